// Helpers shared by the bot's feature composers: the actor, who may see which job, replies with a
// job's message, logs and the full plan.
import { type Context, InputFile } from "grammy";
import { JobIdSchema, type JobView } from "../../protocol/index.ts";
import { jobStub } from "../agents/registry-stub.ts";
import type { Config } from "../config.ts";
import { ApiError } from "../http/errors.ts";
import type { Actor } from "../jobs/job-do.ts";
import { redactorFor } from "../lib/redact.ts";
import { reviewJob, reviewLines } from "../lib/step-review.ts";
import { makeVisible } from "../lib/text-safety.ts";
import { esc, MAX_MESSAGE, renderJob, tailThatFits } from "./format.ts";
import { jobKeyboard } from "./keyboards.ts";

export interface BotDeps {
  env: Env;
  config: Config;
  /** The Worker's public origin, for pairing instructions. */
  origin: string;
}

export function actorOf(ctx: Context, config: Config): Actor {
  const id = String(ctx.from?.id ?? "");
  return { id, isAdmin: config.telegramAdminUserIds.includes(id) };
}

/** The answer for a job that does not exist, and for someone else's job: existence is not leaked. */
export const UNKNOWN_JOB = "I don't know that job.";

/**
 * The job if this Telegram user may see it (they asked for it, or they are an admin), else null
 * exactly as for a job that does not exist.
 */
export async function visibleJob(deps: BotDeps, ctx: Context, jobId: string): Promise<JobView | null> {
  const job = await jobStub(deps.env, jobId).get();
  if (!job) return null;
  const actor = actorOf(ctx, deps.config);
  if (!actor.id) return null;
  return job.userId === actor.id || actor.isAdmin ? job : null;
}

/** Sends every step's action and params in full, as a text file (a message has too little room). */
export async function sendPlan(ctx: Context, env: Env, job: JobView): Promise<void> {
  const review = reviewJob(job);
  if (!review) {
    await ctx.reply(`<code>${job.id}</code> has no plan yet (${job.status}).`, { parse_mode: "HTML" });
    return;
  }
  const lines = [`${job.id} · ${job.status} · intent: ${job.intent}`, "", ...reviewLines(review)];
  for (const s of review.steps) {
    const content = s.params.content;
    if (s.action === "write_file" && typeof content === "string" && content.length > 4000) {
      lines.push("", `--- full content of step ${s.n} (${s.params.path}) ---`, content);
    }
  }
  const text = makeVisible(redactorFor(env).redact(lines.join("\n")));
  await ctx.replyWithDocument(new InputFile(new TextEncoder().encode(text), `${job.id}-plan.txt`), {
    caption: `📄 ${job.id}: ${review.steps.length} step(s), every action and its params in full`,
  });
}

/** The first argument as a job id, or a usage reply. */
export async function jobIdArg(ctx: Context, usage: string): Promise<string | null> {
  const arg = String(ctx.match ?? "")
    .trim()
    .split(/\s+/)[0];
  const parsed = JobIdSchema.safeParse(arg);
  if (!parsed.success) {
    await ctx.reply(`Usage: ${esc(usage)}\nJob ids look like <code>job_0mwu…</code> (see /jobs).`, {
      parse_mode: "HTML",
    });
    return null;
  }
  return parsed.data;
}

export async function replyJob(ctx: Context, job: JobView, config: Config): Promise<void> {
  await ctx.reply(renderJob(job, { approvalTimeoutS: config.approvalTimeoutS }), {
    parse_mode: "HTML",
    reply_markup: jobKeyboard(job),
  });
}

/** Maps the orchestrator's errors to a friendly line. */
export function friendly(err: unknown): string {
  if (err instanceof ApiError) {
    switch (err.code) {
      case "not_found":
        return UNKNOWN_JOB;
      case "forbidden":
        return "Only the person who asked (or an admin) can decide on this job.";
      case "conflict":
        return `Too late: ${err.message}.`;
      case "rate_limited":
        return `🐢 ${err.message}`;
      default:
        return err.message;
    }
  }
  return "Something went wrong on my side; please try again.";
}

/** Sends a job's log: inline when short, as a document when long. */
export async function sendLogs(ctx: Context, env: Env, jobId: string, lines: number): Promise<void> {
  const logs = await jobStub(env, jobId).readLogs({ tail: lines });
  if (!logs) {
    await ctx.reply(UNKNOWN_JOB);
    return;
  }
  const text = logs.lines.join("\n");
  if (!text.trim()) {
    await ctx.reply(`No log lines for <code>${jobId}</code> yet (${logs.status}).`, { parse_mode: "HTML" });
    return;
  }
  const header = `📜 <b>Log</b> · <code>${jobId}</code> · ${logs.status} · last ${logs.lines.length} line(s)\n`;
  const fits = tailThatFits(text, MAX_MESSAGE - header.length - 30);
  if (fits === text) {
    await ctx.reply(`${header}<pre>${esc(text)}</pre>`, { parse_mode: "HTML" });
    return;
  }
  const file = redactorFor(env).redact(text);
  await ctx.replyWithDocument(new InputFile(new TextEncoder().encode(file), `${jobId}.log`), {
    caption: `📜 ${jobId}: last ${logs.lines.length} line(s), too long for a message`,
  });
}
