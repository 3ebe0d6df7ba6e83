// D1 history retention, bounded per run so no periodic path reads all of history: the
// Sentinel deletes pairing-failure counters of past minutes (every run) and, once an hour,
// empties the events of jobs past HISTORY_RETENTION_DAYS (they ride on the job's row since
// migration 0012). It walks the jobs oldest first by id (a job id begins with its creation
// time) from where the last run stopped, at most JOBS_PER_RUN rows a run; a job created
// before the cutoff but updated after it (still running, or long) is passed over and keeps
// its events. Job rows stay (the record; /metrics counts them incrementally). R2 keeps its own
// lifecycle rules (scripts/r2-lifecycle.ts) and a final job's Durable Object deletes its own storage.
import { IDEMPOTENCY_WINDOW_MS } from "../http/idempotency.ts";

export const JOBS_PER_RUN = 2000;
/** The counter holding the creation time (ms) the walk has reached. */
export const EVENTS_CURSOR = "retention:events_through";

export interface RetentionReport {
  eventsDeleted: number;
  countersDeleted: number;
}

/** The smallest job id created at `ms` (ids are job_ + 9 base-36 digits of the time + hex). */
const idAt = (ms: number) => `job_${Math.max(0, ms).toString(36).padStart(9, "0")}`;
const timeOf = (id: string) => Number.parseInt(id.slice(4, 13), 36);

export async function pruneHistory(
  db: D1Database,
  now: number,
  historyRetentionDays: number,
): Promise<RetentionReport> {
  // Bucket names end in the minute (pair_failures:<client>:<minute>); only the current one counts.
  const minute = Math.floor(now / 60_000);
  const counters = await db
    .prepare(
      `DELETE FROM counters WHERE name >= 'pair_failures:' AND name < 'pair_failures;'
         AND CAST(substr(name, length(rtrim(name, '0123456789')) + 1) AS INTEGER) < ?`,
    )
    .bind(minute)
    .run();
  // Idempotency keys outlive their window for nothing (src/http/idempotency.ts).
  await db
    .prepare("DELETE FROM idempotency_keys WHERE created_at < ?")
    .bind(now - IDEMPOTENCY_WINDOW_MS)
    .run();
  const eventsDeleted =
    new Date(now).getUTCMinutes() === 0 ? await compactEvents(db, now - historyRetentionDays * 86_400_000) : 0;
  return { eventsDeleted, countersDeleted: counters.meta.changes };
}

/** One bounded step of the walk: empties the events of the old jobs in it; returns how many events went. */
async function compactEvents(db: D1Database, cutoff: number): Promise<number> {
  const from =
    (await db.prepare("SELECT value FROM counters WHERE name = ?").bind(EVENTS_CURSOR).first<{ value: number }>())
      ?.value ?? 0;
  if (from >= cutoff) return 0;
  const { results } = await db
    .prepare(
      `SELECT id, updated_at < ? AS old, json_array_length(events) AS n FROM jobs
       WHERE id >= ? AND id < ? ORDER BY id LIMIT ?`,
    )
    .bind(cutoff, idAt(from), idAt(cutoff), JOBS_PER_RUN)
    .all<{ id: string; old: number; n: number }>();
  const due = results.filter((r) => r.old === 1 && r.n > 0);
  if (due.length > 0) {
    await db
      .prepare("UPDATE jobs SET events = '[]' WHERE id IN (SELECT value FROM json_each(?))")
      .bind(JSON.stringify(due.map((r) => r.id)))
      .run();
  }
  // A full page stops at its last job (its millisecond is looked at again next time, which is
  // harmless); a short one reached the cutoff. A run always moves on, so it cannot stall.
  const last = results.at(-1);
  const reached =
    results.length < JOBS_PER_RUN || !last ? cutoff : Math.min(cutoff, Math.max(from + 1, timeOf(last.id) || 0));
  await db
    .prepare("INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value")
    .bind(EVENTS_CURSOR, reached)
    .run();
  return due.reduce((sum, r) => sum + r.n, 0);
}
