// Points Telegram at a deployed Worker: setWebhook (with the secret token) and setMyCommands,
// through grammY's own Bot API client (TELEGRAM_API_ROOT reaches a local Bot API or a stand-in).
// `node scripts/telegram-setup.ts https://skynet.example.workers.dev`
// Reads TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET from the environment.
import { Api, GrammyError, HttpError } from "grammy";
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

const api = new Api(token, { apiRoot });
try {
  await api.setWebhook(`${base.replace(/\/$/, "")}/telegram/webhook`, {
    secret_token: secret,
    allowed_updates: ["message", "edited_message", "callback_query"],
    drop_pending_updates: true,
  });
  console.log("setWebhook: ok");
  await api.setMyCommands(COMMANDS);
  console.log("setMyCommands: ok");
} catch (err) {
  // Telegram's refusal (a bad token, a URL it cannot reach) or the network: say which, exit 1.
  if (err instanceof GrammyError) console.error(`${err.method} failed: ${err.description}`);
  else if (err instanceof HttpError) console.error(`cannot reach ${apiRoot}: ${err.message}`);
  else throw err;
  process.exit(1);
}
