// POST /telegram/webhook: Telegram's updates. The secret header is compared in constant time
// before anything else; the update is validated at the envelope level and handed to grammY.
// Planning and execution happen in the JobDO, so the webhook answers in milliseconds.
import { webhookCallback } from "grammy";
import { Hono } from "hono";
import { z } from "zod";
import { createBot } from "../bot/bot.ts";
import { loadConfig } from "../config.ts";
import { ApiError } from "../http/errors.ts";
import { timingSafeEqual } from "../lib/crypto.ts";

const MAX_UPDATE_BYTES = 1024 * 1024;

/** The envelope every Telegram update has; grammY handles the rest of each update type. */
const UpdateSchema = z.looseObject({ update_id: z.number().int().nonnegative() });

export const telegramRoutes = new Hono<{ Bindings: Env }>().post("/webhook", async (c) => {
  const config = loadConfig(c.env);
  if (!config.telegramBotToken || !config.telegramWebhookSecret) {
    throw new ApiError(
      "unavailable",
      "the Telegram bot is not configured (TELEGRAM_BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET)",
    );
  }
  const secret = c.req.header("X-Telegram-Bot-Api-Secret-Token") ?? "";
  if (!timingSafeEqual(secret, config.telegramWebhookSecret)) {
    throw new ApiError("unauthorized", "wrong or missing X-Telegram-Bot-Api-Secret-Token");
  }
  if (Number(c.req.header("Content-Length") ?? "0") > MAX_UPDATE_BYTES) {
    throw new ApiError("payload_too_large", "a Telegram update is never this large");
  }
  let body: unknown;
  try {
    body = await c.req.raw.clone().json();
  } catch {
    throw new ApiError("bad_request", "the update is not valid JSON");
  }
  if (!UpdateSchema.safeParse(body).success) throw new ApiError("bad_request", "not a Telegram update");
  const bot = createBot({ env: c.env, config, origin: new URL(c.req.url).origin });
  const handle = webhookCallback(bot, "hono", {
    secretToken: config.telegramWebhookSecret,
    onTimeout: "return",
    timeoutMilliseconds: 9_000,
  });
  return handle(c);
});
