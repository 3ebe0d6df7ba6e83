// The Worker's side of the coding agent's approvals: a fenced permission_request from the
// registry is stored (D1) with an audit row and put to the job's requester in Telegram with the
// exact command or a diff preview and Allow once / Deny buttons; a decision by that requester (and
// only them) while the request is pending is recorded, audited and sent back down through the
// registry. The agent decides timeouts on its side (it denies, and reports the expiry up); a request
// whose agent is gone is expired by the Sentinel's sweep once past its deadline.
import { and, eq, lte } from "drizzle-orm";
import { err, ok, type PermissionDecision, type PermissionRequestFrame, type Result } from "../../protocol/index.ts";
import { registryStub } from "../agents/registry-stub.ts";
import { jobs, type PermissionRequestRow, permissionRequests } from "../ledger/schema.ts";
import { appendAudit, getDb } from "../ledger/store.ts";
import { errorMessage, log } from "../lib/log.ts";
import { askInTelegram, closePermissionMessage } from "./permission-message.ts";

export { parsePermissionCallback, permissionCallback, renderPermission } from "./permission-message.ts";

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
    messageId: null,
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

/** The decided row, or why it was not decided (`status`: the row's, when it was decided before). */
export type DecideOutcome = Result<
  PermissionRequestRow,
  { code: "unknown" | "already_decided" | "expired"; status?: string }
>;

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
  if (!row || (!owner && row.userId !== userId)) return err({ code: "unknown" });
  const now = Date.now();
  if (row.status === "pending" && row.expiresAt <= now) {
    await expirePermission(env, id);
    return err({ code: "expired" });
  }
  if (row.status !== "pending")
    return err({ code: row.status === "expired" ? "expired" : "already_decided", status: row.status });
  const status = decision === "allow" ? "allowed" : "denied";
  // Only the first decision wins: the update is conditional on the request still pending.
  const won = await db
    .update(permissionRequests)
    .set({ status, decidedAt: now, decidedBy: userId })
    .where(and(eq(permissionRequests.id, id), eq(permissionRequests.status, "pending")))
    .returning({ id: permissionRequests.id });
  if (won.length === 0) return err({ code: "already_decided" });
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
  await closePermissionMessage(env, id, { status, by: owner ? "api" : "requester" });
  return ok({ ...row, status, decidedAt: now, decidedBy: userId });
}

/** The pending requests still within their time (for the API: every requester's). */
export async function pendingPermissions(env: Env): Promise<PermissionRequestRow[]> {
  const db = getDb(env.DB);
  const rows = await db.select().from(permissionRequests).where(eq(permissionRequests.status, "pending")).limit(200);
  const now = Date.now();
  return rows.filter((r) => r.expiresAt > now);
}

/** Who expires a request: the agent that asked (its timer is authoritative), or the deadline. */
type ExpiredBy = { agentId: string; jobId: string; attempt: number };

/**
 * Marks a pending request expired, with an audit row, and closes its Telegram message. From the
 * agent, only its own request (same agent, job and attempt) at any time; otherwise only once past
 * its deadline. Returns whether this call expired it (a decided request stays decided).
 */
export async function expirePermission(env: Env, id: string, by?: ExpiredBy, now = Date.now()): Promise<boolean> {
  const db = getDb(env.DB);
  const whose = by
    ? and(
        eq(permissionRequests.agentId, by.agentId),
        eq(permissionRequests.jobId, by.jobId),
        eq(permissionRequests.attempt, by.attempt),
      )
    : lte(permissionRequests.expiresAt, now);
  const done = await db
    .update(permissionRequests)
    .set({ status: "expired", decidedAt: now })
    .where(and(eq(permissionRequests.id, id), eq(permissionRequests.status, "pending"), whose))
    .returning({ jobId: permissionRequests.jobId });
  const jobId = done[0]?.jobId;
  if (!jobId) return false;
  await appendAudit(db, {
    actor: by ? `agent:${by.agentId}` : "system",
    action: "permission_expired",
    jobId,
    detail: { requestId: id, reason: by ? "no answer before the agent's timeout" : "past its deadline" },
    at: now,
  });
  await closePermissionMessage(env, id, { status: "expired" });
  return true;
}

/** Bounded per run: a backlog is finished by the next runs. */
export const SWEEP_LIMIT = 100;

/** The Sentinel's sweep: pending requests past their deadline (their agent gone or silent) expire. */
export async function sweepExpiredPermissions(env: Env, now = Date.now()): Promise<string[]> {
  const db = getDb(env.DB);
  const due = await db
    .select({ id: permissionRequests.id })
    .from(permissionRequests)
    .where(and(eq(permissionRequests.status, "pending"), lte(permissionRequests.expiresAt, now)))
    .limit(SWEEP_LIMIT);
  const expired: string[] = [];
  for (const { id } of due) {
    try {
      if (await expirePermission(env, id, undefined, now)) expired.push(id);
    } catch (err) {
      log("error", "sentinel: could not expire a permission request", { requestId: id, error: errorMessage(err) });
    }
  }
  return expired;
}
