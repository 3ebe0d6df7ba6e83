// The Telegram bot (grammY): access control first, then one composer per feature. A Bot is made
// per chat inbox (ChatInboxDO, which runs its chat's updates) with its botInfo supplied, so no
// getMe is ever needed.
import { Bot, type Context } from "grammy";
import type { UserFromGetMe } from "grammy/types";
import type { Config } from "../config.ts";
import { appendAudit, getDb, listAudit } from "../ledger/store.ts";
import { log } from "../lib/log.ts";
import { redactorFor } from "../lib/redact.ts";
import { chatSafety } from "../notify/chat-safety.ts";
import { adminCommands } from "./admin.ts";

export { COMMANDS } from "./commands.ts";

import { decisionCommands } from "./decisions.ts";
import { permissionButtons } from "./permissions.ts";
import type { BotDeps } from "./shared.ts";
import { taskCommands } from "./tasks.ts";
import { webCommand } from "./web.ts";

export function botInfo(config: Config): UserFromGetMe {
  const id = Number(config.telegramBotToken.split(":")[0]) || 0;
  return {
    id,
    is_bot: true,
    first_name: "SKYNET",
    username: config.telegramBotUsername,
    can_join_groups: true,
    can_read_all_group_messages: false,
    supports_inline_queries: false,
    can_connect_to_business: false,
    has_main_web_app: false,
    has_topics_enabled: false,
    allows_users_to_create_topics: false,
    can_manage_bots: false,
    supports_join_request_queries: false,
  };
}

/** Allowed users pass; a stranger gets one polite refusal (and one audit entry), then silence. */
async function access(deps: BotDeps, ctx: Context, next: () => Promise<void>): Promise<void> {
  const userId = ctx.from?.id;
  if (userId === undefined || ctx.from?.is_bot) return;
  if (deps.config.telegramAllowedUserIds.includes(String(userId))) return next();
  const db = getDb(deps.env.DB);
  const seen = await listAudit(db, { actor: `telegram:${userId}`, action: "telegram_refused", limit: 1 });
  if (ctx.callbackQuery) await ctx.answerCallbackQuery({ text: "Sorry, this bot is private." });
  if (seen.length > 0) return;
  await appendAudit(db, {
    actor: `telegram:${userId}`,
    action: "telegram_refused",
    detail: { username: ctx.from?.username ?? null, chatId: ctx.chat?.id ?? null },
    at: Date.now(),
  });
  log("warn", "telegram: refused a user who is not allowed", { userId });
  if (ctx.chat?.type === "private") await ctx.reply("Sorry, this is a private bot. I can't take requests from you.");
}

export function createBot(deps: BotDeps): Bot {
  const bot = new Bot(deps.config.telegramBotToken, {
    botInfo: botInfo(deps.config),
    client: { apiRoot: deps.config.telegramApiRoot },
  });
  bot.api.config.use(chatSafety(redactorFor(deps.env)));
  // Edited messages are not re-run (an edited /task would run twice); only new messages count.
  bot.on("edited_message", () => undefined);
  bot.use((ctx, next) => access(deps, ctx, next));
  bot.use(adminCommands(deps));
  bot.use(taskCommands(deps));
  // Before decisionCommands, which answers every other button.
  bot.use(permissionButtons(deps));
  bot.use(decisionCommands(deps));
  bot.use(webCommand(deps));
  bot.on("message:text", async (ctx) => {
    if (ctx.chat.type !== "private") return;
    const text = ctx.message.text;
    if (text.startsWith("/")) {
      await ctx.reply("I don't know that command. /help lists what I can do.");
      return;
    }
    await ctx.reply(
      "Send <code>/task &lt;what to do&gt;</code>, e.g. <code>/task check git status</code>. /help has more.",
      {
        parse_mode: "HTML",
      },
    );
  });
  bot.on("message", async (ctx) => {
    if (ctx.chat.type === "private") await ctx.reply("I only understand text commands. /help lists them.");
  });
  // A button press always gets an answer, or the user's client shows it loading for a while.
  bot.on("callback_query", async (ctx) => {
    await ctx.answerCallbackQuery({ text: "This button is no longer valid." });
  });
  bot.catch((err) => {
    log("error", "telegram: update failed", { error: err.message, updateId: err.ctx.update.update_id });
  });
  return bot;
}
