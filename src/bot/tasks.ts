// Task commands: /task, /retry, /status, /jobs, /logs, /artifacts, /plan. A job is shown only to
// the person who asked for it and to admins; anyone else is told it does not exist.
import { Composer, InlineKeyboard, InputFile } from "grammy";
import { intentProblem, MAX_INTENT_CHARS, ProjectIdSchema } from "../../protocol/index.ts";
import { jobStub } from "../agents/registry-stub.ts";
import { ArtifactStore } from "../archive/artifacts.ts";
import { createTask } from "../core/orchestrator.ts";
import { ApiError } from "../http/errors.ts";
import { getDb, listJobs } from "../ledger/store.ts";
import { sha256Hex } from "../lib/crypto.ts";
import { errorMessage, log } from "../lib/log.ts";
import { type FollowUpStart, followUpOf, recordThread } from "./follow-ups.ts";
import { clipText, esc } from "./format.ts";
import { type BotDeps, friendly, jobIdArg, replyJob, sendLogs, sendPlan, UNKNOWN_JOB, visibleJob } from "./shared.ts";

const MAX_DOCUMENT_BYTES = 20 * 1024 * 1024;
const PAGE = 5;

/**
 * The job id for the update that asks for it, derived from the message (chat + message id) or the
 * button press (callback query id): Telegram redelivers an update when the webhook was slow or
 * failed, and a redelivered /task must find its job instead of making a second one.
 */
async function intakeJobId(ctx: import("grammy").Context, deps: BotDeps): Promise<string | null> {
  const source = ctx.callbackQuery
    ? `cb:${ctx.callbackQuery.id}`
    : ctx.msg
      ? `msg:${ctx.msg.chat.id}:${ctx.msg.message_id}`
      : null;
  if (!source) return null;
  const bot = deps.config.telegramBotToken.split(":")[0] ?? "";
  return `job_t${(await sha256Hex(`telegram:${bot}:${source}`)).slice(0, 20)}`;
}

/**
 * Replies "Planning…" first, then creates the job with that message as its home. A follow-up's
 * Planning message replies to the earlier job's message, so the chat shows the thread.
 */
export async function startTask(
  ctx: import("grammy").Context,
  deps: BotDeps,
  intent: string,
  projectId = "default",
  thread?: FollowUpStart,
): Promise<void> {
  const chatId = String(ctx.chat?.id ?? "");
  const jobId = await intakeJobId(ctx, deps);
  // A redelivered update: its job exists, the person already has its message; say nothing.
  if (jobId && (await jobStub(deps.env, jobId).get())) {
    log("info", "telegram: redelivered update ignored", { jobId });
    return;
  }
  const after = thread ? ` ↪ follow-up of <code>${thread.followUp.parentJobId}</code>` : "";
  const planning = await ctx.reply(`🧠 Planning… <i>${esc(clipText(intent, 300))}</i>${after}`, {
    parse_mode: "HTML",
    reply_parameters: thread ? { message_id: thread.replyTo, allow_sending_without_reply: true } : undefined,
  });
  try {
    await createTask(deps.env, {
      followUp: thread?.followUp,
      jobId: jobId ?? undefined,
      intent,
      projectId,
      userId: String(ctx.from?.id ?? ""),
      chatId,
      messageId: planning.message_id,
      rateLimited: true,
    });
    if (thread && jobId) await recordThread(deps.env, jobId, thread);
  } catch (err) {
    if (!(err instanceof ApiError)) log("error", "bot: task creation failed", { error: errorMessage(err) });
    await ctx.api.editMessageText(chatId, planning.message_id, friendly(err), { parse_mode: "HTML" });
  }
}

export async function jobsPage(ctx: import("grammy").Context, deps: BotDeps, cursor?: string): Promise<void> {
  const page = await listJobs(getDb(deps.env.DB), {
    userId: String(ctx.from?.id ?? ""),
    limit: PAGE,
    cursor,
  }).catch(() => null);
  if (!page) {
    await ctx.reply("That page is no longer available; send /jobs again.");
    return;
  }
  if (page.jobs.length === 0) {
    await ctx.reply(cursor ? "No more jobs." : "No jobs yet. Try <code>/task check git status</code>.", {
      parse_mode: "HTML",
    });
    return;
  }
  const lines = page.jobs.map(
    (j) => `<code>${j.id}</code> · ${j.status} · ${esc(clipText(j.intent, 60))}${j.intent.length > 60 ? "…" : ""}`,
  );
  await ctx.reply(`<b>Your jobs</b>\n${lines.join("\n")}`, {
    parse_mode: "HTML",
    reply_markup: page.nextCursor ? new InlineKeyboard().text("More ▶", `j:${page.nextCursor}`) : undefined,
  });
}

/** Why an intent cannot be taken (too long, unsafe characters), or null. */
function intentRefusal(intent: string): string | null {
  if (intent.length > MAX_INTENT_CHARS) {
    return `That task is ${intent.length} characters long; please keep it under ${MAX_INTENT_CHARS}.`;
  }
  const problem = intentProblem(intent);
  return problem ? `That task cannot be taken: ${problem}.` : null;
}

export function taskCommands(deps: BotDeps): Composer<import("grammy").Context> {
  const c = new Composer();

  c.command("task", async (ctx) => {
    // "/task @project what to do" targets another workspace than "default".
    const m = /^@(\S+)\s+([\s\S]*)$/.exec(String(ctx.match ?? "").trim());
    const projectId = m ? m[1] : "default";
    const intent = (m ? (m[2] ?? "") : String(ctx.match ?? "")).trim();
    if (!intent) {
      await ctx.reply(
        "Usage: <code>/task [@project] &lt;what to do&gt;</code>, e.g. <code>/task check git status</code> or <code>/task @api run the tests</code>",
        { parse_mode: "HTML" },
      );
      return;
    }
    if (!ProjectIdSchema.safeParse(projectId).success) {
      await ctx.reply("Project names are 1-64 letters, digits, '.', '_' or '-', e.g. <code>@my-app</code>.", {
        parse_mode: "HTML",
      });
      return;
    }
    const refusal = intentRefusal(intent);
    if (refusal) {
      await ctx.reply(refusal);
      return;
    }
    await startTask(ctx, deps, intent, projectId);
  });

  // A text reply to one of the bot's messages about a job: a follow-up job (commands are above).
  c.on("message:text", async (ctx, next) => {
    if (ctx.message.text.startsWith("/")) return next();
    const start = await followUpOf(ctx, deps);
    if (!start) return next();
    if (!start.ok) {
      await ctx.reply(start.error);
      return;
    }
    const intent = ctx.message.text.trim();
    const refusal = intent ? intentRefusal(intent) : 'Reply with what to do next, e.g. "now fix it".';
    if (refusal) {
      await ctx.reply(refusal);
      return;
    }
    await startTask(ctx, deps, intent, start.value.projectId, start.value);
  });

  c.command("retry", async (ctx) => {
    const jobId = await jobIdArg(ctx, "/retry <job id>");
    if (!jobId) return;
    const job = await visibleJob(deps, ctx, jobId);
    if (!job) {
      await ctx.reply(UNKNOWN_JOB);
      return;
    }
    await startTask(ctx, deps, job.intent, job.projectId);
  });

  c.command("status", async (ctx) => {
    const jobId = await jobIdArg(ctx, "/status <job id>");
    if (!jobId) return;
    const job = await visibleJob(deps, ctx, jobId);
    if (!job) {
      await ctx.reply(UNKNOWN_JOB);
      return;
    }
    await replyJob(ctx, job, deps.config);
  });

  c.command("plan", async (ctx) => {
    const jobId = await jobIdArg(ctx, "/plan <job id>");
    if (!jobId) return;
    const job = await visibleJob(deps, ctx, jobId);
    if (!job) {
      await ctx.reply(UNKNOWN_JOB);
      return;
    }
    await sendPlan(ctx, deps.env, job);
  });

  c.command("jobs", (ctx) => jobsPage(ctx, deps));

  c.command("logs", async (ctx) => {
    const [, n] = String(ctx.match ?? "")
      .trim()
      .split(/\s+/);
    const jobId = await jobIdArg(ctx, "/logs <job id> [lines]");
    if (!jobId) return;
    const lines = n === undefined ? 50 : Number(n);
    if (!Number.isInteger(lines) || lines < 1 || lines > 10_000) {
      await ctx.reply("Usage: /logs <job id> [lines], with 1 to 10000 lines (default 50).");
      return;
    }
    if (!(await visibleJob(deps, ctx, jobId))) {
      await ctx.reply(UNKNOWN_JOB);
      return;
    }
    await sendLogs(ctx, deps.env, jobId, lines);
  });

  c.command("artifacts", async (ctx) => {
    const jobId = await jobIdArg(ctx, "/artifacts <job id>");
    if (!jobId) return;
    if (!(await visibleJob(deps, ctx, jobId))) {
      await ctx.reply(UNKNOWN_JOB);
      return;
    }
    const store = new ArtifactStore(deps.env.ARCHIVE);
    const all = await store.list(jobId);
    if (all.length === 0) {
      await ctx.reply(`<code>${jobId}</code> has no artifacts.`, { parse_mode: "HTML" });
      return;
    }
    for (const a of all.slice(0, 10)) {
      if (a.size > MAX_DOCUMENT_BYTES) {
        await ctx.reply(`📎 ${esc(a.name)} is ${a.size} bytes, too big to send here; download it from the API.`, {
          parse_mode: "HTML",
        });
        continue;
      }
      const obj = await store.get(jobId, a.name);
      if (!obj) continue;
      await ctx.replyWithDocument(new InputFile(new Uint8Array(await obj.arrayBuffer()), a.name), {
        caption: `📎 ${a.name} · ${a.size} bytes · sha256 ${a.sha256.slice(0, 12)}…`,
      });
    }
  });

  return c;
}
