// Ledger store functions over D1 (drizzle-orm). Every write is idempotent so the JobDO outbox can
// retry it: job rows are whole-snapshot upserts (never moving updatedAt backwards), events are
// keyed by (job_id, seq).
import { and, desc, eq, lt, or, sql } from "drizzle-orm";
import { type DrizzleD1Database, drizzle } from "drizzle-orm/d1";
import * as schema from "./schema.ts";
import {
  type AuditRow,
  auditLog,
  counters,
  type JobEventRow,
  type JobRow,
  jobEvents,
  jobs,
  type NewJobRow,
} from "./schema.ts";

export type Db = DrizzleD1Database<typeof schema>;

export function getDb(d1: D1Database): Db {
  return drizzle(d1, { schema });
}

/** Raised for caller mistakes (a malformed cursor); routes turn it into a 400. */
export class LedgerInputError extends Error {}

// ---- jobs -----------------------------------------------------------------------------------------

/** Inserts or replaces a job's snapshot; an older snapshot never overwrites a newer one. */
/**
 * `before`: the snapshot this writer last wrote for the job, when it knows it. D1 bills each
 * index entry an update rewrites, and SQLite rewrites an index whenever a column of it is in
 * the SET list, changed or not: so what a job never changes (user, creation time) stays out,
 * and the status and the chat message (indexed) stay out when equal to `before`.
 */
export function upsertJobQuery(
  db: Db,
  row: NewJobRow,
  before: Pick<NewJobRow, "status" | "chatId" | "messageId"> | null = null,
) {
  const {
    id: _id,
    createdAt: _createdAt,
    userId: _userId,
    projectId: _projectId,
    intent: _intent,
    status,
    chatId,
    messageId,
    ...rest
  } = row;
  const set = {
    ...rest,
    ...(before?.status === status ? {} : { status }),
    ...(before && before.chatId === chatId && before.messageId === messageId ? {} : { chatId, messageId }),
  };
  return db
    .insert(jobs)
    .values(row)
    .onConflictDoUpdate({ target: jobs.id, set, setWhere: sql`${jobs.updatedAt} <= ${row.updatedAt}` });
}

export async function upsertJob(db: Db, row: NewJobRow): Promise<void> {
  await upsertJobQuery(db, row);
}

export async function getJob(db: Db, id: string): Promise<JobRow | null> {
  return (await db.select().from(jobs).where(eq(jobs.id, id)).get()) ?? null;
}

export interface ListJobsQuery {
  status?: string;
  userId?: string;
  limit?: number;
  cursor?: string;
}

function encodeCursor(row: { createdAt: number; id: string }): string {
  return btoa(`${row.createdAt}:${row.id}`).replaceAll("=", "");
}

function decodeCursor(cursor: string): { createdAt: number; id: string } {
  let text: string;
  try {
    text = atob(cursor);
  } catch {
    throw new LedgerInputError("cursor is not one this API returned");
  }
  const m = /^(\d{1,16}):(job_[0-9a-z]{10,40})$/.exec(text);
  if (!m?.[1] || !m[2]) throw new LedgerInputError("cursor is not one this API returned");
  return { createdAt: Number(m[1]), id: m[2] };
}

/** Newest first; `nextCursor` continues after the last row returned (null at the end). */
export async function listJobs(db: Db, q: ListJobsQuery): Promise<{ jobs: JobRow[]; nextCursor: string | null }> {
  const limit = Math.min(Math.max(q.limit ?? 20, 1), 100);
  const conditions = [];
  if (q.status) conditions.push(eq(jobs.status, q.status));
  if (q.userId) conditions.push(eq(jobs.userId, q.userId));
  if (q.cursor) {
    const c = decodeCursor(q.cursor);
    conditions.push(or(lt(jobs.createdAt, c.createdAt), and(eq(jobs.createdAt, c.createdAt), lt(jobs.id, c.id))));
  }
  const rows = await db
    .select()
    .from(jobs)
    .where(conditions.length > 0 ? and(...conditions) : undefined)
    .orderBy(desc(jobs.createdAt), desc(jobs.id))
    .limit(limit + 1)
    .all();
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return { jobs: page, nextCursor: rows.length > limit && last ? encodeCursor(last) : null };
}

export async function updateJobStatus(
  db: Db,
  id: string,
  status: string,
  opts: { at: number; error?: string | null },
): Promise<boolean> {
  const res = await db
    .update(jobs)
    .set({ status, updatedAt: opts.at, ...(opts.error !== undefined ? { error: opts.error } : {}) })
    .where(and(eq(jobs.id, id), sql`${jobs.updatedAt} <= ${opts.at}`))
    .run();
  return res.meta.changes > 0;
}

// ---- job events -------------------------------------------------------------------------------------

export interface JobEventInput {
  jobId: string;
  seq: number;
  fromStatus: string | null;
  toStatus: string;
  event: string;
  detail?: Record<string, unknown>;
  at: number;
}

/** Appends one transition; a replay of the same (jobId, seq) is ignored. */
export async function appendJobEvent(db: Db, e: JobEventInput): Promise<void> {
  await appendJobEventQuery(db, e);
}

export function appendJobEventQuery(db: Db, e: JobEventInput) {
  return appendJobEventsQuery(db, [e]);
}

/** Events a job's statement can carry: D1 binds at most 100 parameters, 7 per event. */
export const EVENTS_PER_STATEMENT = 14;

/** Appends transitions in one statement (at most EVENTS_PER_STATEMENT); replays are ignored. */
export function appendJobEventsQuery(db: Db, events: JobEventInput[]) {
  return db
    .insert(jobEvents)
    .values(
      events.map((e) => ({
        jobId: e.jobId,
        seq: e.seq,
        fromStatus: e.fromStatus,
        toStatus: e.toStatus,
        event: e.event,
        detail: e.detail ? JSON.stringify(e.detail) : null,
        at: e.at,
      })),
    )
    .onConflictDoNothing({ target: [jobEvents.jobId, jobEvents.seq] });
}

export async function listJobEvents(db: Db, jobId: string): Promise<JobEventRow[]> {
  return db.select().from(jobEvents).where(eq(jobEvents.jobId, jobId)).orderBy(jobEvents.seq).all();
}

// ---- audit ------------------------------------------------------------------------------------------

export interface AuditInput {
  actor: string;
  action: string;
  jobId?: string | null;
  detail?: Record<string, unknown>;
  at: number;
}

export async function appendAudit(db: Db, a: AuditInput): Promise<void> {
  await appendAuditQuery(db, a);
}

export function appendAuditQuery(db: Db, a: AuditInput) {
  return db.insert(auditLog).values({
    actor: a.actor,
    action: a.action,
    jobId: a.jobId ?? null,
    detail: a.detail ? JSON.stringify(a.detail) : null,
    at: a.at,
  });
}

export async function listAudit(
  db: Db,
  opts: { jobId?: string; actor?: string; action?: string; limit?: number } = {},
): Promise<AuditRow[]> {
  const conditions = [];
  if (opts.jobId) conditions.push(eq(auditLog.jobId, opts.jobId));
  if (opts.actor) conditions.push(eq(auditLog.actor, opts.actor));
  if (opts.action) conditions.push(eq(auditLog.action, opts.action));
  return db
    .select()
    .from(auditLog)
    .where(conditions.length > 0 ? and(...conditions) : undefined)
    .orderBy(desc(auditLog.id))
    .limit(Math.min(opts.limit ?? 100, 1000))
    .all();
}

// ---- counters -------------------------------------------------------------------------------------------

export async function incrementCounter(db: Db, name: string, by = 1): Promise<void> {
  await db
    .insert(counters)
    .values({ name, value: by })
    .onConflictDoUpdate({ target: counters.name, set: { value: sql`${counters.value} + ${by}` } });
}

export async function readCounters(db: Db, prefix?: string): Promise<Record<string, number>> {
  const rows = await db
    .select()
    .from(counters)
    .where(prefix ? sql`${counters.name} LIKE ${`${prefix}%`}` : undefined)
    .all();
  const out: Record<string, number> = {};
  for (const r of rows) {
    out[r.name] = r.value;
    // A histogram's sum is kept on its bucket rows (migration 0011): read back under its old name.
    const hist = /^hist:(\w+):le:/.exec(r.name);
    if (hist) out[`hist:${hist[1]}:sum_ms`] = (out[`hist:${hist[1]}:sum_ms`] ?? 0) + r.sumMs;
  }
  return out;
}
