// Ledger store functions over D1 (drizzle-orm). Every write is idempotent so the JobDO outbox can
// retry it: job rows are whole-snapshot upserts (never moving updatedAt backwards), a job's events
// ride on its row keyed by seq (a replayed seq appends nothing).
import { and, desc, eq, getTableColumns, lt, or, sql } from "drizzle-orm";
import { type DrizzleD1Database, drizzle } from "drizzle-orm/d1";
import { appendEventsSql, uniqueEvents } from "./job-events.ts";
import * as schema from "./schema.ts";
import {
  type AuditRow,
  auditLog,
  counters,
  type JobEventJson,
  type JobEventRow,
  type JobRow,
  jobMetrics,
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

/**
 * Inserts or replaces a job's snapshot; an older snapshot never overwrites a newer one. `events`:
 * transitions appended to the row by the same statement (one row written for both), each once.
 *
 * `before`: the snapshot this writer last wrote for the job, when it knows it. D1 bills each
 * index entry an update rewrites, and SQLite rewrites an index whenever a column of it is in
 * the SET list, changed or not: so what a job never changes (user, creation time) stays out,
 * and the status and the chat message (indexed) stay out when equal to `before`.
 */
export function upsertJobQuery(
  db: Db,
  row: NewJobRow,
  before: Pick<NewJobRow, "status" | "chatId" | "messageId"> | null = null,
  events: JobEventJson[] = [],
) {
  const {
    id: _id,
    createdAt: _createdAt,
    userId: _userId,
    projectId: _projectId,
    intent: _intent,
    events: _events,
    status,
    chatId,
    messageId,
    ...rest
  } = row;
  const set = {
    ...rest,
    ...(before?.status === status ? {} : { status }),
    ...(before && before.chatId === chatId && before.messageId === messageId ? {} : { chatId, messageId }),
    ...(events.length > 0 ? { events: appendEventsSql(events) } : {}),
  };
  return db
    .insert(jobs)
    .values({ ...row, events: JSON.stringify(uniqueEvents(events)) })
    .onConflictDoUpdate({ target: jobs.id, set, setWhere: sql`${jobs.updatedAt} <= ${row.updatedAt}` });
}

export async function upsertJob(db: Db, row: NewJobRow): Promise<void> {
  await upsertJobQuery(db, row);
}

/** A job's row as its readers see it: without the final log (up to 16 KiB only the log download reads). */
export type LedgerJob = Omit<JobRow, "log">;

export async function getJob(db: Db, id: string): Promise<LedgerJob | null> {
  const { log: _log, ...columns } = getTableColumns(jobs);
  return (await db.select(columns).from(jobs).where(eq(jobs.id, id)).get()) ?? null;
}

/**
 * Puts the job's final log on its row (archive-log.ts): one row written, the same text again on
 * a retry. False when the job has no row yet (nothing written). Plain D1, no query building:
 * this runs at the end of every job.
 */
export async function writeJobLog(d1: D1Database, id: string, text: string): Promise<boolean> {
  const res = await d1.prepare("UPDATE jobs SET log = ? WHERE id = ?").bind(text, id).run();
  return res.meta.changes > 0;
}

/** The final log on the job's row (null: none there); null for a job the ledger has no row for. */
export async function readJobLog(d1: D1Database, id: string): Promise<{ log: string | null } | null> {
  return d1.prepare("SELECT log FROM jobs WHERE id = ?").bind(id).first<{ log: string | null }>();
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

/** A listed job: its row without the events and the log (a page of jobs carries no job's history). */
export type ListedJob = Omit<JobRow, "events" | "log">;

/** Newest first; `nextCursor` continues after the last row returned (null at the end). */
export async function listJobs(db: Db, q: ListJobsQuery): Promise<{ jobs: ListedJob[]; nextCursor: string | null }> {
  const limit = pageSize(q);
  const rows = await listJobsQuery(db, q).all();
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return { jobs: page, nextCursor: rows.length > limit && last ? encodeCursor(last) : null };
}

const pageSize = (q: ListJobsQuery) => Math.min(Math.max(q.limit ?? 20, 1), 100);

/** The page's statement (one row more than the page, to know whether another follows). */
export function listJobsQuery(db: Db, q: ListJobsQuery) {
  const limit = pageSize(q);
  const conditions = [];
  if (q.status) conditions.push(eq(jobs.status, q.status));
  if (q.userId) conditions.push(eq(jobs.userId, q.userId));
  if (q.cursor) {
    const c = decodeCursor(q.cursor);
    conditions.push(or(lt(jobs.createdAt, c.createdAt), and(eq(jobs.createdAt, c.createdAt), lt(jobs.id, c.id))));
  }
  const { events: _events, log: _log, ...columns } = getTableColumns(jobs);
  return db
    .select(columns)
    .from(jobs)
    .where(conditions.length > 0 ? and(...conditions) : undefined)
    .orderBy(desc(jobs.createdAt), desc(jobs.id))
    .limit(limit + 1);
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

/**
 * Appends transitions to the job's row (at most EVENTS_PER_STATEMENT); replays are ignored.
 * `row` creates the row if the job has none yet (its snapshot at the time of the events);
 * `notAfter`: append only if the row is not newer than that (the guard of a snapshot written
 * in the same batch, so the events and their counters go together).
 */
export function appendJobEventsQuery(db: Db, row: NewJobRow, events: JobEventJson[], notAfter: number | null = null) {
  return db
    .insert(jobs)
    .values({ ...row, events: JSON.stringify(uniqueEvents(events)) })
    .onConflictDoUpdate({
      target: jobs.id,
      // A final log riding on this write (row.log set) is written with the events.
      set: { events: appendEventsSql(events), ...(row.log === undefined ? {} : { log: row.log }) },
      ...(notAfter === null ? {} : { setWhere: sql`${jobs.updatedAt} <= ${notAfter}` }),
    });
}

/** A job's transitions, oldest first (none for a job the ledger has no row for). */
export async function listJobEvents(db: Db, jobId: string): Promise<JobEventRow[]> {
  const row = await db.select({ events: jobs.events }).from(jobs).where(eq(jobs.id, jobId)).get();
  return row ? parseJobEvents(jobId, row.events) : [];
}

/** jobs.events as rows; an element that is not a transition is left out rather than shown wrong. */
export function parseJobEvents(jobId: string, text: string): JobEventRow[] {
  let list: unknown;
  try {
    list = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(list)) return [];
  const out: JobEventRow[] = [];
  for (const e of list as Partial<JobEventJson>[]) {
    if (typeof e !== "object" || e === null) continue;
    if (typeof e.seq !== "number" || typeof e.to !== "string" || typeof e.event !== "string") continue;
    if (typeof e.at !== "number") continue;
    out.push({
      jobId,
      seq: e.seq,
      fromStatus: typeof e.from === "string" ? e.from : null,
      toStatus: e.to,
      event: e.event,
      detail: e.detail && typeof e.detail === "object" ? JSON.stringify(e.detail) : null,
      at: e.at,
    });
  }
  return out.sort((a, b) => a.seq - b.seq);
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

/**
 * Every counter outside the families with a row per day or minute (pairing failures per client
 * and minute, the token chart's days), which only their own prefix reads: what /metrics reads,
 * so it does not grow with history. The key ranges between them, each a range of the primary
 * key (an OR of the ranges would scan the table).
 */
export function undatedCountersQuery(db: Db) {
  const range = (from: string | null, to: string | null) =>
    db
      .select()
      .from(counters)
      .where(
        from === null
          ? sql`${counters.name} < ${to}`
          : to === null
            ? sql`${counters.name} >= ${from}`
            : sql`${counters.name} >= ${from} AND ${counters.name} < ${to}`,
      );
  return range(null, "pair_failures:")
    .unionAll(range("pair_failures;", "tokens_day:"))
    .unionAll(range("tokens_day;", null));
}

/**
 * With a prefix, the counters under it; without one, every counter but the dated families
 * (undatedCountersQuery), and the job metrics' object too.
 */
export async function readCounters(db: Db, prefix?: string): Promise<Record<string, number>> {
  const [rows, metrics] = await Promise.all([
    prefix
      ? db
          .select()
          .from(counters)
          .where(sql`${counters.name} LIKE ${`${prefix}%`}`)
          .all()
      : undatedCountersQuery(db).all(),
    prefix ? Promise.resolve(undefined) : db.select({ data: jobMetrics.data }).from(jobMetrics).get(),
  ]);
  const out: Record<string, number> = {};
  for (const r of rows) out[r.name] = r.value;
  for (const [name, value] of Object.entries(parseObject(metrics?.data)))
    if (typeof value === "number") out[name] = value;
  return out;
}

function parseObject(text: string | undefined): Record<string, unknown> {
  if (!text) return {};
  try {
    const v: unknown = JSON.parse(text);
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
