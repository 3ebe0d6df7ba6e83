// Alerts to the admins' Telegram chats, deduplicated: an open alert is sent once (reminded only
// after a long cooldown) and its recovery once. State lives in the ledger's `alerts` table, so
// every Sentinel run (and every isolate) agrees on what was already said.
import { eq } from "drizzle-orm";
import { Api } from "grammy";
import { escapeHtml } from "../../protocol/index.ts";
import { loadConfig } from "../config.ts";
import { alerts } from "../ledger/schema.ts";
import { getDb } from "../ledger/store.ts";
import { errorMessage, log } from "../lib/log.ts";
import { redactorFor } from "../lib/redact.ts";
import { chatSafety } from "../notify/chat-safety.ts";

export const ALERT_REMINDER_MS = 6 * 3600_000;

/** Sends to every admin chat; true when at least one accepted it (or there is nobody to tell). */
async function sendToAdmins(env: Env, html: string): Promise<boolean> {
  const config = loadConfig(env);
  if (!config.telegramBotToken || config.telegramAdminUserIds.length === 0) {
    log("warn", "alert (no Telegram admin chat configured)", { text: html });
    return true;
  }
  const api = new Api(config.telegramBotToken, { apiRoot: config.telegramApiRoot });
  api.config.use(chatSafety(redactorFor(env)));
  let sent = false;
  for (const chatId of config.telegramAdminUserIds) {
    try {
      await api.sendMessage(chatId, html, { parse_mode: "HTML" });
      sent = true;
    } catch (err) {
      log("error", "alert delivery failed", { chatId, error: errorMessage(err) });
    }
  }
  return sent;
}

/** Opens (or keeps open) an alert; sends it when new or when the reminder cooldown has passed. */
export async function raiseAlert(env: Env, key: string, message: string, now = Date.now()): Promise<boolean> {
  const db = getDb(env.DB);
  const row = await db.select().from(alerts).where(eq(alerts.key, key)).get();
  const isNew = !row?.active;
  if (!isNew && now - row.lastSentAt < ALERT_REMINDER_MS) return false;
  const text = isNew ? `🚨 <b>SKYNET alert</b>\n${escapeHtml(message)}` : `🚨 still: ${escapeHtml(message)}`;
  const delivered = await sendToAdmins(env, text);
  // An undelivered alert keeps last_sent_at at 0 so the next Sentinel run tries again.
  const lastSentAt = delivered ? now : 0;
  await db
    .insert(alerts)
    .values({ key, active: true, message, openedAt: now, lastSentAt, resolvedAt: null })
    .onConflictDoUpdate({
      target: alerts.key,
      set: isNew ? { active: true, message, openedAt: now, lastSentAt, resolvedAt: null } : { lastSentAt, message },
    });
  log("warn", "alert raised", { key, message, delivered, isNew });
  return delivered;
}

/** Closes an open alert with one recovery message; does nothing when none is open. */
export async function resolveAlert(env: Env, key: string, message: string, now = Date.now()): Promise<boolean> {
  const db = getDb(env.DB);
  const row = await db.select().from(alerts).where(eq(alerts.key, key)).get();
  if (!row?.active) return false;
  const minutes = Math.max(1, Math.round((now - row.openedAt) / 60_000));
  await db.update(alerts).set({ active: false, resolvedAt: now }).where(eq(alerts.key, key)).run();
  await sendToAdmins(env, `✅ <b>recovered</b>: ${escapeHtml(message)} (after ~${minutes} min)`);
  log("info", "alert resolved", { key });
  return true;
}
