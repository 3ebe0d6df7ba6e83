// Runs the Worker's cron and queue handlers inside workerd as the runtime would call them, so a
// test says what it delivers rather than how the runtime's test doubles are put together.
import {
  createExecutionContext,
  createMessageBatch,
  createScheduledController,
  env,
  getQueueResult,
  type QueueResult,
  waitOnExecutionContext,
} from "cloudflare:test";
import worker from "../../src/index.ts";

/** One cron tick (the Sentinel), waited for to its end. */
export async function runScheduled(): Promise<void> {
  const ctx = createExecutionContext();
  await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: "* * * * *" }), env, ctx);
  await waitOnExecutionContext(ctx);
}

/** Delivers `messages` (sent now) to the consumer of `queue`; answers what it acked and retried. */
export async function runQueue(
  queue: string,
  messages: { id: string; attempts: number; body: unknown }[],
): Promise<QueueResult> {
  const batch = createMessageBatch(
    queue,
    messages.map((m) => ({ ...m, timestamp: new Date() })),
  );
  const ctx = createExecutionContext();
  await worker.queue(batch, env);
  return getQueueResult(batch, ctx);
}
