// POST /telegram/webhook: Telegram's updates. The secret header is compared in constant time
// before anything else; the update is validated at the envelope level and handed to grammY.
// Planning and execution happen in the JobDO, so the webhook answers in milliseconds.
import { webhookCallback } from "grammy";
import { Hono } from "hono";
import { z } from "zod";
import { describeIssues } from "../../protocol/index.ts";
import { createBot } from "../bot/bot.ts";
import { loadConfig } from "../config.ts";
import { ApiError } from "../http/errors.ts";
import { boundedBody, MAX_UPDATE_BYTES, requireJsonType } from "../http/limits.ts";
import { getDb, incrementCounter } from "../ledger/store.ts";
import { timingSafeEqual } from "../lib/crypto.ts";
import { errorMessage, log } from "../lib/log.ts";

/** The /metrics counter of updates whose handler threw (skynet_webhook_errors_total). */
export const WEBHOOK_ERRORS = "webhook_errors";

// The parts of an update the bot reads, checked before grammY sees them; fields the bot does
// not use pass through untouched (Telegram adds new ones over time).
const UserSchema = z.looseObject({ id: z.number().int(), is_bot: z.boolean(), first_name: z.string() });
const ChatSchema = z.looseObject({ id: z.number().int(), type: z.string() });
const EntitySchema = z.looseObject({
  type: z.string(),
  offset: z.number().int().min(0),
  length: z.number().int().min(0),
});
const MessageSchema = z.looseObject({
  message_id: z.number().int(),
  date: z.number().int(),
  chat: ChatSchema,
  from: UserSchema.optional(),
  text: z.string().optional(),
  caption: z.string().optional(),
  entities: z.array(EntitySchema).optional(),
});
const CallbackQuerySchema = z.looseObject({
  id: z.string(),
  from: UserSchema,
  chat_instance: z.string(),
  data: z.string().optional(),
  message: z.looseObject({ message_id: z.number().int(), chat: ChatSchema }).optional(),
});
const UpdateSchema = z.looseObject({
  update_id: z.number().int().nonnegative(),
  message: MessageSchema.optional(),
  edited_message: MessageSchema.optional(),
  channel_post: MessageSchema.optional(),
  edited_channel_post: MessageSchema.optional(),
  callback_query: CallbackQuerySchema.optional(),
});

export const telegramRoutes = new Hono<{ Bindings: Env }>().post(
  "/webhook",
  boundedBody(MAX_UPDATE_BYTES, "a Telegram update"),
  async (c) => {
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
    requireJsonType(c.req.header("Content-Type"));
    let body: unknown;
    try {
      body = await c.req.raw.clone().json();
    } catch {
      throw new ApiError("bad_request", "the update is not valid JSON");
    }
    const update = UpdateSchema.safeParse(body);
    if (!update.success) throw new ApiError("bad_request", `not a Telegram update: ${describeIssues(update.error)}`);
    const bot = createBot({ env: c.env, config, origin: new URL(c.req.url).origin });
    const handle = webhookCallback(bot, "hono", {
      secretToken: config.telegramWebhookSecret,
      onTimeout: "return",
      timeoutMilliseconds: 9_000,
    });
    try {
      return await handle(c);
    } catch (err) {
      // A poison update must not make Telegram redeliver it forever: acknowledge it, but count it
      // (/metrics) and say so in a header, so a failing handler is never just a log line.
      log("error", "telegram: update failed", { updateId: update.data.update_id, error: errorMessage(err) });
      await incrementCounter(getDb(c.env.DB), WEBHOOK_ERRORS).catch(() => undefined);
      return c.json({ ok: true }, 200, { "X-Skynet-Update-Failed": "1" });
    }
  },
);
