// POST /telegram/webhook: Telegram's updates. The secret header is compared in constant time
// before anything else; the update is validated at the envelope level and handed, durably, to its
// chat's ChatInboxDO, which answers once it has stored it. The bot replies from there, in order
// per chat, so the webhook answers without waiting for D1 or the Bot API.
import { Hono } from "hono";
import { z } from "zod";
import { describeIssues } from "../../protocol/index.ts";
import { chatKeyOf } from "../bot/chat-key.ts";
import { loadConfig } from "../config.ts";
import { ApiError } from "../http/errors.ts";
import { boundedBody, MAX_UPDATE_BYTES, requireJsonType } from "../http/limits.ts";
import { timingSafeEqual } from "../lib/crypto.ts";

export { WEBHOOK_ERRORS } from "../bot/chat-inbox-do.ts";

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
    let text: string;
    let body: unknown;
    try {
      // Read once (no clone): the text is what the inbox stores, the parse is what is checked.
      text = await c.req.text();
      body = JSON.parse(text);
    } catch {
      throw new ApiError("bad_request", "the update is not valid JSON");
    }
    const update = UpdateSchema.safeParse(body);
    if (!update.success) throw new ApiError("bad_request", `not a Telegram update: ${describeIssues(update.error)}`);
    // Once the inbox has stored the update it is Telegram's 200; if it could not, Telegram's
    // redelivery of the failed POST is the retry.
    const inbox = c.env.CHAT_INBOX.getByName(chatKeyOf(update.data));
    await inbox.deliver(update.data.update_id, text, new URL(c.req.url).origin);
    return c.body(null, 200);
  },
);
