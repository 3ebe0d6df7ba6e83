// The Worker's side of the coding agent's approvals: a fenced permission_request from the
// registry is stored (D1) with an audit row and put to the job's requester in Telegram with the
// exact command or a diff preview and Allow once / Deny buttons; a decision by that requester (and
// only them) while the request is pending is recorded, audited and sent back down through the
// registry. The agent decides timeouts on its side; here a request past its time reads as expired.
import { and, eq } from "drizzle-orm";
import { Api, InlineKeyboard } from "grammy";
import type { PermissionDecision, PermissionRequestFrame } from "../../protocol/index.ts";
import { registryStub } from "../agents/registry-stub.ts";
import { esc, MAX_MESSAGE } from "../bot/format.ts";
import { loadConfig } from "../config.ts";
import { jobs, type PermissionRequestRow, permissionRequests } from "../ledger/schema.ts";
import { appendAudit, getDb } from "../ledger/store.ts";
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

/** The Telegram text: what the coding agent wants, exact, escaped, within 4096 characters. */
export function renderPermission(
  row: Pick<PermissionRequestRow, "jobId" | "tool" | "kind" | "target" | "preview" | "expiresAt">,
): string {
  const head = `🤖 <b>The coding agent asks</b> (job <code>${esc(row.jobId)}</code>)\n`;
  const what =
    row.kind === "command"
      ? `Run this shell command:\n<pre>${esc(row.target)}</pre>`
      : `${row.kind === "search" ? "Search" : row.kind === "write" ? "Write the file" : "Edit the file"} <code>${esc(row.target)}</code>`;
  const until = `\nAnswer by ${new Date(row.expiresAt).toISOString().slice(11, 19)} UTC, or it is denied.`;
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

/**
 * Stores a request the registry already fenced (the agent holds this job's current lease) and
 * asks the requester. Returns false when the job is unknown (the agent is then told to deny).
 */
export async function recordPermissionRequest(
  env: Env,
  agentId: string,
  frame: PermissionRequestFrame,
): Promise<boolean> {
  const db = getDb(env.DB);
  const job = (
    await db.select({ userId: jobs.userId, chatId: jobs.chatId }).from(jobs).where(eq(jobs.id, frame.jobId)).limit(1)
  )[0];
  if (!job) return false;
  const now = Date.now();
  const row: PermissionRequestRow = {
    id: frame.requestId,
    jobId: frame.jobId,
    attempt: frame.attempt,
    stepId: frame.stepId,
    agentId,
    userId: job.userId,
    chatId: job.chatId,
    tool: frame.tool,
    kind: frame.kind,
    target: frame.target,
    preview: frame.preview ?? null,
    status: "pending",
    createdAt: now,
    expiresAt: now + frame.timeoutS * 1000,
    decidedAt: null,
    decidedBy: null,
  };
  // A replayed frame (after a reconnect) is the same request: stored and asked once.
  const inserted = await db
    .insert(permissionRequests)
    .values(row)
    .onConflictDoNothing()
    .returning({ id: permissionRequests.id });
  if (inserted.length === 0) return true;
  await appendAudit(db, {
    actor: `agent:${agentId}`,
    action: "permission_requested",
    jobId: frame.jobId,
    detail: { requestId: row.id, tool: row.tool, kind: row.kind, target: row.target },
    at: now,
  });
  await askInTelegram(env, row);
  return true;
}

async function askInTelegram(env: Env, row: PermissionRequestRow): Promise<void> {
  const config = loadConfig(env);
  if (!row.chatId || !config.telegramBotToken) return;
  const api = new Api(config.telegramBotToken, { apiRoot: config.telegramApiRoot });
  api.config.use(chatSafety(redactorFor(env)));
  const keyboard = new InlineKeyboard()
    .text("✅ Allow once", permissionCallback("allow", row.id))
    .text("✖️ Deny", permissionCallback("deny", row.id));
  try {
    await api.sendMessage(row.chatId, renderPermission(row), { parse_mode: "HTML", reply_markup: keyboard });
  } catch (err) {
    // Unasked, it times out on the agent as a deny: nothing runs without an answer.
    log("warn", "telegram: could not ask for a permission", { jobId: row.jobId, error: errorMessage(err) });
  }
}

export type DecideOutcome =
  | { ok: true; row: PermissionRequestRow }
  | { ok: false; error: "unknown" | "already_decided" | "expired"; status?: string };

/** Records the requester's decision and sends it down; anyone else gets "unknown" (nothing leaks). */
export async function decidePermission(
  env: Env,
  id: string,
  userId: string,
  decision: PermissionDecision,
  /** The API token's holder, the deployment's owner, may decide anyone's request. */
  owner = false,
): Promise<DecideOutcome> {
  const db = getDb(env.DB);
  const row = (await db.select().from(permissionRequests).where(eq(permissionRequests.id, id)).limit(1))[0];
  if (!row || (!owner && row.userId !== userId)) return { ok: false, error: "unknown" };
  const now = Date.now();
  if (row.status === "pending" && row.expiresAt <= now) {
    await db
      .update(permissionRequests)
      .set({ status: "expired" })
      .where(and(eq(permissionRequests.id, id), eq(permissionRequests.status, "pending")));
    await appendAudit(db, {
      actor: "system",
      action: "permission_expired",
      jobId: row.jobId,
      detail: { requestId: id },
      at: now,
    });
    return { ok: false, error: "expired" };
  }
  if (row.status !== "pending")
    return { ok: false, error: row.status === "expired" ? "expired" : "already_decided", status: row.status };
  const status = decision === "allow" ? "allowed" : "denied";
  // Only the first decision wins: the update is conditional on the request still pending.
  const won = await db
    .update(permissionRequests)
    .set({ status, decidedAt: now, decidedBy: userId })
    .where(and(eq(permissionRequests.id, id), eq(permissionRequests.status, "pending")))
    .returning({ id: permissionRequests.id });
  if (won.length === 0) return { ok: false, error: "already_decided" };
  await appendAudit(db, {
    actor: owner ? "api" : `telegram:${userId}`,
    action: decision === "allow" ? "permission_allowed" : "permission_denied",
    jobId: row.jobId,
    detail: { requestId: id, tool: row.tool, target: row.target },
    at: now,
  });
  await registryStub(env).sendPermissionDecision({
    type: "permission_decision",
    jobId: row.jobId,
    attempt: row.attempt,
    requestId: id,
    decision,
    reason: `${decision === "allow" ? "allowed" : "denied"} by the requester`,
  });
  return { ok: true, row: { ...row, status, decidedAt: now, decidedBy: userId } };
}

/** The pending requests still within their time (for the API: every requester's). */
export async function pendingPermissions(env: Env): Promise<PermissionRequestRow[]> {
  const db = getDb(env.DB);
  const rows = await db.select().from(permissionRequests).where(eq(permissionRequests.status, "pending")).limit(200);
  const now = Date.now();
  return rows.filter((r) => r.expiresAt > now);
}
