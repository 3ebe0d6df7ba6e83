// Worker entry: the Hono app for HTTP, the queue consumers, the Sentinel cron, and the DO classes.
import { app } from "./app.ts";
import { meterWorker } from "./lib/op-meter.ts";
import { consumeQueue } from "./queue/dispatch-consumer.ts";
import { runSentinel } from "./sentinel/sentinel.ts";

export { AgentRegistryDO } from "./agents/agent-registry-do.ts";
export { ChatInboxDO } from "./bot/chat-inbox-do.ts";
export { RateLimitDO } from "./http/rate-limit-do.ts";
export { JobDO } from "./jobs/job-do.ts";

export default meterWorker({
  fetch: app.fetch,
  queue: consumeQueue,
  async scheduled(controller, env, ctx) {
    ctx.waitUntil(runSentinel(env, controller.scheduledTime).then(() => undefined));
  },
} satisfies ExportedHandler<Env>);
