// Points Telegram at a deployed Worker: setWebhook (with the secret token) and setMyCommands.
// `node scripts/telegram-setup.ts https://skynet.example.workers.dev`
// Reads TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET from the environment.
import { z } from "zod";
import { COMMANDS } from "../src/bot/commands.ts";

const base = process.argv[2];
const token = process.env.TELEGRAM_BOT_TOKEN;
const secret = process.env.TELEGRAM_WEBHOOK_SECRET;
const apiRoot = (process.env.TELEGRAM_API_ROOT ?? "https://api.telegram.org").replace(/\/$/, "");
if (!base || !z.url({ protocol: /^https?$/ }).safeParse(base).success || !token || !secret) {
  console.error(
    "usage: TELEGRAM_BOT_TOKEN=… TELEGRAM_WEBHOOK_SECRET=… node scripts/telegram-setup.ts https://<your worker>\n(the secret must be 1-256 of A-Z a-z 0-9 _ -)",
  );
  process.exit(2);
}

async function call(method: string, params: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${apiRoot}/bot${token}/${method}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(params),
  });
  const body = (await res.json()) as { ok: boolean; description?: string };
  if (!body.ok) throw new Error(`${method} failed: ${body.description ?? res.status}`);
  console.log(`${method}: ok`);
}

await call("setWebhook", {
  url: `${base.replace(/\/$/, "")}/telegram/webhook`,
  secret_token: secret,
  allowed_updates: ["message", "edited_message", "callback_query"],
  drop_pending_updates: true,
});
await call("setMyCommands", { commands: COMMANDS });
