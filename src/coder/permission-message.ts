// The Telegram side of a coding agent's permission request: the message that asks (exact command
// or path, a preview, Allow once / Deny buttons) and, when the request ends however it ends, the
// same message edited to say how, buttons gone — nobody sees live buttons for a dead request.
import { eq } from "drizzle-orm";
import { Api, InlineKeyboard } from "grammy";
import type { PermissionDecision } from "../../protocol/index.ts";
import { esc, MAX_MESSAGE } from "../bot/format.ts";
import { loadConfig } from "../config.ts";
import { type PermissionRequestRow, permissionRequests } from "../ledger/schema.ts";
import { getDb } from "../ledger/store.ts";
import { errorMessage, log } from "../lib/log.ts";
import { redactorFor } from "../lib/redact.ts";
import { chatSafety } from "../notify/chat-safety.ts";

/** Callback data: "pm:<a|d>:<request id>" (≤ 3 + 2 + 40 bytes, under Telegram's 64). */
export const permissionCallback = (decision: PermissionDecision, id: string) =>
  `pm:${decision === "allow" ? "a" : "d"}:${id}`;

export function parsePermissionCallback(data: string | undefined): { decision: PermissionDecision; id: string } | null {
  const m = /^pm:([ad]):([A-Za-z0-9_-]{8,40})$/.exec(data ?? "");
  if (!m?.[2]) return null;
  return { decision: m[1] === "a" ? "allow" : "deny", id: m[2] };
}

type Shown = Pick<PermissionRequestRow, "jobId" | "tool" | "kind" | "target" | "preview" | "expiresAt">;

/** How a request ended, as its message says afterwards. */
export type PermissionEnd = { status: "allowed" | "denied"; by: "requester" | "api" } | { status: "expired" };

function endLine(end: PermissionEnd): string {
  if (end.status === "expired") return "\n⌛ <b>Expired</b>: no answer in time, so it was denied.";
  const via = end.by === "api" ? " (through the API)" : "";
  return end.status === "allowed" ? `\n✅ <b>Allowed once</b>${via}.` : `\n✖️ <b>Denied</b>${via}.`;
}

/**
 * The Telegram text: what the coding agent wants, exact, escaped, within 4096 characters. While
 * pending it says when it lapses; once ended, how it ended.
 */
export function renderPermission(row: Shown, end?: PermissionEnd): string {
  const head = `🤖 <b>The coding agent asks</b> (job <code>${esc(row.jobId)}</code>)\n`;
  const what =
    row.kind === "command"
      ? `Run this shell command:\n<pre>${esc(row.target)}</pre>`
      : `${row.kind === "search" ? "Search" : row.kind === "write" ? "Write the file" : "Edit the file"} <code>${esc(row.target)}</code>`;
  const until = end
    ? endLine(end)
    : `\nAnswer by ${new Date(row.expiresAt).toISOString().slice(11, 19)} UTC, or it is denied.`;
  let preview = row.preview ? `\n<pre>${esc(row.preview)}</pre>` : "";
  // The command is never cut (the agent refuses one too long to show); only the preview gives way.
  const room = MAX_MESSAGE - head.length - what.length - until.length;
  if (preview.length > room) {
    const marker = "\n… (preview cut)";
    let cut = row.preview ?? "";
    while (cut.length > 0 && `\n<pre>${esc(cut)}${marker}</pre>`.length > room)
      cut = cut.slice(0, Math.floor(cut.length * 0.9));
    preview = cut ? `\n<pre>${esc(cut)}${marker}</pre>` : "";
  }
  return head + what + preview + until;
}

function botApi(env: Env): Api | null {
  const config = loadConfig(env);
  if (!config.telegramBotToken) return null;
  const api = new Api(config.telegramBotToken, { apiRoot: config.telegramApiRoot });
  api.config.use(chatSafety(redactorFor(env)));
  return api;
}

/** Asks the requester; the message's id is kept so the message can be closed later. */
export async function askInTelegram(env: Env, row: PermissionRequestRow): Promise<void> {
  const api = botApi(env);
  if (!row.chatId || !api) return;
  const keyboard = new InlineKeyboard()
    .text("✅ Allow once", permissionCallback("allow", row.id))
    .text("✖️ Deny", permissionCallback("deny", row.id));
  try {
    const sent = await api.sendMessage(row.chatId, renderPermission(row), {
      parse_mode: "HTML",
      reply_markup: keyboard,
    });
    const [now] = await getDb(env.DB)
      .update(permissionRequests)
      .set({ messageId: sent.message_id })
      .where(eq(permissionRequests.id, row.id))
      .returning({ status: permissionRequests.status, decidedBy: permissionRequests.decidedBy });
    // Ended while the message was on its way (decided in the API, expired): close it now.
    if (now && now.status !== "pending") await closePermissionMessage(env, row.id, endOf(now));
  } catch (err) {
    // Unasked, it times out on the agent as a deny: nothing runs without an answer.
    log("warn", "telegram: could not ask for a permission", { jobId: row.jobId, error: errorMessage(err) });
  }
}

function endOf(r: { status: string; decidedBy: string | null }): PermissionEnd {
  if (r.status === "allowed" || r.status === "denied")
    return { status: r.status, by: r.decidedBy === "api" ? "api" : "requester" };
  return { status: "expired" };
}

/** Edits the asking message to say how the request ended; without a keyboard, its buttons go. */
export async function closePermissionMessage(env: Env, id: string, end: PermissionEnd): Promise<void> {
  const db = getDb(env.DB);
  const row = (await db.select().from(permissionRequests).where(eq(permissionRequests.id, id)).limit(1))[0];
  const api = botApi(env);
  if (!row?.chatId || row.messageId === null || !api) return;
  try {
    await api.editMessageText(row.chatId, row.messageId, renderPermission(row, end), { parse_mode: "HTML" });
  } catch (err) {
    log("warn", "telegram: could not close a permission message", { jobId: row.jobId, error: errorMessage(err) });
  }
}
