// Local use without a public URL: long-polls Telegram's getUpdates with the bot token and
// forwards each update to the local webhook with the secret header, exactly as Telegram would.
// `node scripts/telegram-poll.ts --webhook http://127.0.0.1:8787/telegram/webhook`
// (npm run dev starts it for you when TELEGRAM_BOT_TOKEN is set in .dev.vars).
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { z } from "zod";

const { values } = parseArgs({
  options: {
    webhook: { type: "string", default: "http://127.0.0.1:8787/telegram/webhook" },
    "api-root": { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(
    "usage: node scripts/telegram-poll.ts [--webhook URL] [--api-root URL]\nreads TELEGRAM_BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET (and TELEGRAM_API_ROOT) from the environment or .dev.vars",
  );
  process.exit(0);
}

function devVar(name: string): string | undefined {
  if (process.env[name]) return process.env[name];
  try {
    return new RegExp(`^${name}=(.*)$`, "m").exec(readFileSync(".dev.vars", "utf8"))?.[1]?.trim() || undefined;
  } catch {
    return undefined;
  }
}

const token = devVar("TELEGRAM_BOT_TOKEN");
const secret = devVar("TELEGRAM_WEBHOOK_SECRET");
if (!token || !secret) {
  console.error("telegram-poll: set TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET (env or .dev.vars)");
  process.exit(2);
}
const apiRoot = (values["api-root"] ?? devVar("TELEGRAM_API_ROOT") ?? "https://api.telegram.org").replace(/\/$/, "");
const UpdatesSchema = z.object({
  ok: z.boolean(),
  result: z.array(z.looseObject({ update_id: z.number().int() })).optional(),
  description: z.string().optional(),
});

async function call(method: string, params: Record<string, unknown>): Promise<z.infer<typeof UpdatesSchema>> {
  const res = await fetch(`${apiRoot}/bot${token}/${method}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(params),
    signal: AbortSignal.timeout(60_000),
  });
  return UpdatesSchema.parse(await res.json());
}

/** How long Telegram holds a getUpdates call open when there is nothing new. */
const LONG_POLL_S = 25;
/** An empty answer faster than this did not long-poll. */
const QUICK_MS = 1000;

let stopping = false;
// Stop at once, even mid-backoff or mid-poll: an update not yet confirmed by the next offset is
// simply delivered again by Telegram on the next start.
const stop = () => {
  stopping = true;
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

async function main(): Promise<void> {
  // getUpdates does not work while a webhook is set.
  await call("deleteWebhook", { drop_pending_updates: false }).catch(() => undefined);
  console.log(`[telegram] polling ${apiRoot.replace(/bot[^/]+/, "bot…")} → ${values.webhook}`);
  let offset = 0;
  let failures = 0;
  let quickEmpty = 0;
  while (!stopping) {
    let updates: { update_id: number }[];
    try {
      const asked = Date.now();
      const res = await call("getUpdates", {
        offset,
        timeout: LONG_POLL_S,
        allowed_updates: ["message", "edited_message", "callback_query"],
      });
      if (!res.ok) throw new Error(res.description ?? "getUpdates failed");
      updates = res.result ?? [];
      failures = 0;
      // An empty answer that came at once means the API is not long-polling (a proxy, a stand-in,
      // an outage page): wait before asking again instead of spinning.
      if (updates.length === 0 && Date.now() - asked < QUICK_MS) {
        quickEmpty += 1;
        await sleep(Math.min(30_000, 500 * 2 ** Math.min(quickEmpty - 1, 6)));
        continue;
      }
      quickEmpty = 0;
    } catch (err) {
      failures += 1;
      const wait = Math.min(30_000, 1000 * 2 ** failures);
      console.error(
        `[telegram] getUpdates failed (${err instanceof Error ? err.message : String(err)}); retrying in ${wait / 1000}s`,
      );
      await sleep(wait);
      continue;
    }
    for (const update of updates) {
      try {
        const res = await fetch(values.webhook, {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret ?? "" },
          body: JSON.stringify(update),
        });
        if (!res.ok) console.error(`[telegram] webhook answered ${res.status} for update ${update.update_id}`);
      } catch (err) {
        console.error(`[telegram] webhook unreachable: ${err instanceof Error ? err.message : String(err)}`);
        await sleep(2000);
        break; // retry from this update
      }
      offset = update.update_id + 1;
    }
  }
}

main().catch((err: unknown) => {
  console.error(`[telegram] ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
