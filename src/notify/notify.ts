// Tells the person who asked about a job's progress. Telegram is wired in by the bot feature;
// jobs created through the API have no chat and nothing is sent.
import type { JobView } from "../../protocol/index.ts";

/** What was last sent for a job, kept in its JobDO so edits can be skipped or throttled. */
export interface NotifyMemo {
  lastText?: string;
  lastAt?: number;
}

/**
 * Sends or edits the job's Telegram message. Returns the new memo. Throwing makes the JobDO's
 * outbox retry later (with backoff), e.g. when Telegram asks to slow down.
 */
export async function notifyJob(_env: Env, _job: JobView, memo: NotifyMemo): Promise<NotifyMemo> {
  return memo;
}
