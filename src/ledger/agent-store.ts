// Ledger store functions for agents over D1 (drizzle-orm): their ledger rows (status, load,
// capabilities), pairing codes and agent tokens (hashes only). Jobs, events, audit and counters
// are in store.ts.
import { and, desc, eq, gt, isNull, lt, sql } from "drizzle-orm";
import { type AgentTokenRow, agentTokens, type WorkerRow, workers } from "./schema.ts";
import type { Db } from "./store.ts";

// ---- workers ----------------------------------------------------------------------------------------

export type WorkerStatus = "ONLINE" | "BUSY" | "OFFLINE";

export interface WorkerInput {
  id: string;
  name: string;
  capabilities: string[];
  workspaces: string[];
  status: WorkerStatus;
  running: number;
  maxConcurrency: number;
  version: string;
  at: number;
}

export async function upsertWorker(db: Db, w: WorkerInput): Promise<void> {
  const values = {
    id: w.id,
    name: w.name,
    capabilities: JSON.stringify(w.capabilities),
    workspaces: JSON.stringify(w.workspaces),
    status: w.status,
    running: w.running,
    maxConcurrency: w.maxConcurrency,
    version: w.version,
    lastHeartbeatAt: w.at,
    createdAt: w.at,
    updatedAt: w.at,
  };
  const { id: _id, createdAt: _c, ...update } = values;
  await db.insert(workers).values(values).onConflictDoUpdate({ target: workers.id, set: update });
}

export async function setWorkerStatus(
  db: Db,
  id: string,
  status: WorkerStatus,
  opts: { running?: number; at: number },
): Promise<void> {
  await db
    .update(workers)
    .set({ status, updatedAt: opts.at, ...(opts.running !== undefined ? { running: opts.running } : {}) })
    .where(eq(workers.id, id))
    .run();
}

/** A heartbeat: refreshes last_heartbeat_at and brings an OFFLINE agent back ONLINE. */
export async function touchWorker(db: Db, id: string, at: number, running?: number): Promise<void> {
  await db
    .update(workers)
    .set({
      lastHeartbeatAt: at,
      updatedAt: at,
      status:
        running === undefined
          ? sql`CASE WHEN ${workers.status} = 'OFFLINE' THEN 'ONLINE' ELSE ${workers.status} END`
          : running > 0
            ? "BUSY"
            : "ONLINE",
      ...(running !== undefined ? { running } : {}),
    })
    .where(eq(workers.id, id))
    .run();
}

export interface WorkerView extends Omit<WorkerRow, "capabilities" | "workspaces"> {
  capabilities: string[];
  workspaces: string[];
}

function workerView(r: WorkerRow): WorkerView {
  return {
    ...r,
    capabilities: JSON.parse(r.capabilities) as string[],
    workspaces: JSON.parse(r.workspaces) as string[],
  };
}

export async function listWorkers(db: Db, opts: { status?: WorkerStatus }): Promise<WorkerView[]> {
  const rows = await db
    .select()
    .from(workers)
    .where(opts.status ? eq(workers.status, opts.status) : undefined)
    .orderBy(desc(workers.lastHeartbeatAt))
    .all();
  return rows.map(workerView);
}

/** Agents not OFFLINE whose last heartbeat is older than the cutoff go OFFLINE; returns their ids. */
export async function markStaleWorkersOffline(db: Db, cutoffMs: number): Promise<string[]> {
  const rows = await db
    .update(workers)
    .set({ status: "OFFLINE", updatedAt: sql`${Date.now()}` })
    .where(and(sql`${workers.status} <> 'OFFLINE'`, lt(workers.lastHeartbeatAt, cutoffMs)))
    .returning({ id: workers.id })
    .all();
  return rows.map((r) => r.id);
}

// ---- pairing and tokens -------------------------------------------------------------------------------

export async function createPairing(
  db: Db,
  p: { id: string; agentId: string; name: string; codeHash: string; expiresAt: number; createdBy: string; at: number },
): Promise<void> {
  await db.insert(agentTokens).values({
    id: p.id,
    agentId: p.agentId,
    name: p.name,
    codeHash: p.codeHash,
    codeExpiresAt: p.expiresAt,
    createdBy: p.createdBy,
    createdAt: p.at,
  });
}

/**
 * Redeems an unexpired, unused pairing code exactly once: the single UPDATE both checks and
 * consumes it (the code hash is cleared), so two concurrent redemptions cannot both win.
 */
export async function redeemPairing(
  db: Db,
  r: { codeHash: string; tokenHash: string; name: string; now: number },
): Promise<{ agentId: string; id: string } | null> {
  const rows = await db
    .update(agentTokens)
    .set({ tokenHash: r.tokenHash, codeHash: null, codeExpiresAt: null, pairedAt: r.now, name: r.name })
    .where(
      and(
        eq(agentTokens.codeHash, r.codeHash),
        gt(agentTokens.codeExpiresAt, r.now),
        isNull(agentTokens.tokenHash),
        isNull(agentTokens.revokedAt),
      ),
    )
    .returning({ agentId: agentTokens.agentId, id: agentTokens.id })
    .all();
  return rows[0] ?? null;
}

export async function findActiveToken(db: Db, tokenHash: string): Promise<AgentTokenRow | null> {
  return (
    (await db
      .select()
      .from(agentTokens)
      .where(and(eq(agentTokens.tokenHash, tokenHash), isNull(agentTokens.revokedAt)))
      .get()) ?? null
  );
}

export async function touchToken(db: Db, id: string, at: number): Promise<void> {
  await db.update(agentTokens).set({ lastUsedAt: at }).where(eq(agentTokens.id, id)).run();
}

/** Tokens and pending codes without any hash. */
export async function listTokens(db: Db) {
  return db
    .select({
      id: agentTokens.id,
      agentId: agentTokens.agentId,
      name: agentTokens.name,
      createdBy: agentTokens.createdBy,
      createdAt: agentTokens.createdAt,
      pairedAt: agentTokens.pairedAt,
      lastUsedAt: agentTokens.lastUsedAt,
      revokedAt: agentTokens.revokedAt,
      codeExpiresAt: agentTokens.codeExpiresAt,
    })
    .from(agentTokens)
    .orderBy(desc(agentTokens.createdAt))
    .all();
}

export async function revokeToken(db: Db, id: string, at: number): Promise<{ agentId: string } | null> {
  const rows = await db
    .update(agentTokens)
    .set({ revokedAt: at, codeHash: null })
    .where(and(eq(agentTokens.id, id), isNull(agentTokens.revokedAt)))
    .returning({ agentId: agentTokens.agentId })
    .all();
  return rows[0] ?? null;
}
