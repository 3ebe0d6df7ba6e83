// Queue consumers: the dispatch queue hands each {jobId, attempt} to its JobDO (acked per
// message, retried with backoff on errors); the dead-letter queue fails the job with a reason.
import { z } from "zod";
import { JobIdSchema } from "../../protocol/index.ts";
import { jobStub } from "../agents/registry-stub.ts";
import { getDb, incrementCounter } from "../ledger/store.ts";
import { errorMessage, log } from "../lib/log.ts";
import { raiseAlert } from "../sentinel/alerts.ts";

export const DispatchMessageSchema = z.strictObject({ jobId: JobIdSchema, attempt: z.number().int().min(1) });
export type DispatchMessage = z.infer<typeof DispatchMessageSchema>;

export const DISPATCH_QUEUE = "skynet-dispatch";
export const DEAD_LETTER_QUEUE = "skynet-dispatch-dlq";

/** min(10 s · 2^n, 10 min), n = deliveries so far − 1. */
export function retryDelaySeconds(attempts: number): number {
  return Math.min(10 * 2 ** Math.max(0, attempts - 1), 600);
}

export async function consumeDispatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const msg of batch.messages) {
    const parsed = DispatchMessageSchema.safeParse(msg.body);
    if (!parsed.success) {
      log("error", "dropping malformed dispatch message", { id: msg.id });
      msg.ack();
      continue;
    }
    const { jobId, attempt } = parsed.data;
    try {
      const outcome = await jobStub(env, jobId).dispatch(attempt);
      log("info", "dispatch", { jobId, attempt, outcome, delivery: msg.attempts });
      msg.ack();
    } catch (err) {
      const delaySeconds = retryDelaySeconds(msg.attempts);
      log("warn", "dispatch failed; retrying", { jobId, attempt, delaySeconds, error: errorMessage(err) });
      msg.retry({ delaySeconds });
      await incrementCounter(getDb(env.DB), "queue_retries").catch(() => undefined);
    }
  }
}

export async function consumeDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const msg of batch.messages) {
    const parsed = DispatchMessageSchema.safeParse(msg.body);
    if (parsed.success) {
      const { jobId, attempt } = parsed.data;
      const failed = await jobStub(env, jobId).deadLetter(
        attempt,
        `dispatch retried ${msg.attempts} time(s) without success`,
      );
      log("error", "dead-lettered dispatch", { jobId, attempt, failed });
      await incrementCounter(getDb(env.DB), "dead_letters").catch(() => undefined);
      await raiseAlert(
        env,
        `dead_letter:${jobId}`,
        `job ${jobId} (attempt ${attempt}) was dead-lettered after ${msg.attempts} dispatch attempts and failed`,
      ).catch((err: unknown) => log("error", "dead-letter alert failed", { jobId, error: errorMessage(err) }));
    }
    msg.ack();
  }
}

export async function consumeQueue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  if (batch.queue === DEAD_LETTER_QUEUE) return consumeDeadLetters(batch, env);
  return consumeDispatch(batch, env);
}
