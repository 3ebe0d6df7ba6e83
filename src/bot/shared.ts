// Helpers shared by the bot's feature composers: the actor, replies with a job's message, logs.
import { type Context, InputFile } from "grammy";
import { JobIdSchema, type JobView } from "../../protocol/index.ts";
import { jobStub } from "../agents/registry-stub.ts";
import type { Config } from "../config.ts";
import { ApiError } from "../http/errors.ts";
import type { Actor } from "../jobs/job-do.ts";
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
        return "I don't know that job.";
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
    await ctx.reply("I don't know that job.");
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
  await ctx.replyWithDocument(new InputFile(new TextEncoder().encode(text), `${jobId}.log`), {
    caption: `📜 ${jobId}: last ${logs.lines.length} line(s), too long for a message`,
  });
}
