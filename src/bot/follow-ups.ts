// Follow-ups: a text reply to the bot's message about a job ("now fix it") starts a new job that
// carries the earlier job's intent and answer as context for the planner (as data, never as
// instructions), threaded under the earlier message. The earlier job is found from the bot's own
// message only: by (chat, message) in the ledger, else by the job id the bot wrote in that message;
// then it must be one this person may see, or it does not exist for them.
import type { Context } from "grammy";
import type { Message } from "grammy/types";
import { err, JobIdSchema, ok, type Result } from "../../protocol/index.ts";
import { MAX_FOLLOW_UP_ANSWER } from "../planners/follow-up.ts";
import { type BotDeps, UNKNOWN_JOB, visibleJob } from "./shared.ts";

export const UNKNOWN_THREAD =
  "I can't tell which job that message is about. Reply to a job's message from me, or send /task <what to do>.";

/** The job the bot's message `replied` is about, or null; null too when the message is not the bot's. */
export async function jobOfBotMessage(ctx: Context, deps: BotDeps, replied: Message): Promise<string | null> {
  if (!replied.from?.is_bot || replied.from.id !== ctx.me.id) return null;
  const row = await deps.env.DB.prepare("SELECT id FROM jobs WHERE chat_id = ? AND message_id = ? LIMIT 1")
    .bind(String(replied.chat.id), replied.message_id)
    .first<{ id: string }>();
  if (row) return row.id;
  // A job's message re-sent after its original could not be edited has another id; its status line
  // ("<status> · job_…", see renderJob) names the job. Text above it (an answer) could imitate that
  // line, so whatever it names still has to pass the visibility check below like any other id.
  const named = /^.* · (job_[0-9a-z]{10,40})$/m.exec(replied.text ?? "")?.[1];
  const parsed = JobIdSchema.safeParse(named);
  return parsed.success ? parsed.data : null;
}

export interface FollowUpStart {
  followUp: { parentJobId: string; intent: string; answer: string | null };
  replyTo: number;
}

/** What a reply to the bot's message should start, or a refusal to send (null: not a follow-up). */
export async function followUpOf(
  ctx: Context,
  deps: BotDeps,
): Promise<Result<FollowUpStart & { projectId: string }> | null> {
  const replied = ctx.message?.reply_to_message;
  if (!replied || replied.from?.id !== ctx.me.id) return null;
  const parentId = await jobOfBotMessage(ctx, deps, replied);
  if (!parentId) return err(UNKNOWN_THREAD);
  const parent = await visibleJob(deps, ctx, parentId);
  if (!parent) return err(UNKNOWN_JOB);
  return ok({
    projectId: parent.projectId,
    replyTo: replied.message_id,
    followUp: {
      parentJobId: parent.id,
      intent: parent.intent,
      answer: parent.answer?.text?.slice(0, MAX_FOLLOW_UP_ANSWER) ?? null,
    },
  });
}

/** Records the thread (idempotent: a redelivered update finds its row). */
export async function recordThread(env: Env, jobId: string, start: FollowUpStart): Promise<void> {
  await env.DB.prepare(
    "INSERT INTO job_threads (job_id, parent_job_id, reply_to_message_id, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(job_id) DO NOTHING",
  )
    .bind(jobId, start.followUp.parentJobId, start.replyTo, Date.now())
    .run();
}
