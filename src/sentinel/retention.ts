// D1 history retention, bounded per run so no periodic path reads all of history: the
// Sentinel deletes pairing-failure counters of past minutes (every run) and, once an hour,
// empties the events of jobs past HISTORY_RETENTION_DAYS (they ride on the job's row since
// migration 0012) and the final logs kept on job rows past LOG_RETENTION_DAYS (migration 0015:
// the small ones; R2 expires the others after as long, by its own lifecycle rules,
// scripts/r2-lifecycle.ts). Each walks the jobs oldest first by id (a job id begins with its
// creation time) from where its last run stopped, at most JOBS_PER_RUN rows a run. A job created
// before the cutoff but updated after it (still running, or long) is passed over and keeps its
// events; the log walk instead waits at such a job holding a log (it ended after the cutoff,
// so it is past it in at most as long as it ran), so no log outlives its retention. Job rows
// stay (the record; /metrics counts them incrementally); a final job's Durable Object deletes
// its own storage.
import { IDEMPOTENCY_WINDOW_MS } from "../http/idempotency.ts";

export const JOBS_PER_RUN = 2000;
/** The counters holding the creation time (ms) each walk has reached. */
export const EVENTS_CURSOR = "retention:events_through";
export const LOGS_CURSOR = "retention:logs_through";

export interface RetentionReport {
  eventsDeleted: number;
  /** Final logs emptied on job rows (those in R2 go by its lifecycle rules). */
  logsDeleted: number;
  countersDeleted: number;
}

export interface RetentionDays {
  history: number;
  logs: number;
}

/** The smallest job id created at `ms` (ids are job_ + 9 base-36 digits of the time + hex). */
const idAt = (ms: number) => `job_${Math.max(0, ms).toString(36).padStart(9, "0")}`;
const timeOf = (id: string) => Number.parseInt(id.slice(4, 13), 36);

export async function pruneHistory(db: D1Database, now: number, days: RetentionDays): Promise<RetentionReport> {
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
  const hourly = new Date(now).getUTCMinutes() === 0;
  const eventsDeleted = hourly ? await walk(db, EVENTS_WALK, now - days.history * 86_400_000) : 0;
  const logsDeleted = hourly ? await walk(db, LOGS_WALK, now - days.logs * 86_400_000) : 0;
  return { eventsDeleted, logsDeleted, countersDeleted: counters.meta.changes };
}

/** What one walk empties on the rows of old jobs. */
interface Walk {
  cursor: string;
  /** SQL: how much a row holds to empty (0: nothing); the walk reports their sum. */
  held: string;
  /** SQL: the SET list that empties it. */
  empty: string;
  /** Stop at a job holding something but updated after the cutoff, until it is past it too. */
  waitForLate: boolean;
}

const EVENTS_WALK: Walk = {
  cursor: EVENTS_CURSOR,
  held: "json_array_length(events)",
  empty: "events = '[]'",
  waitForLate: false,
};
// `log IS NOT NULL` is read from the record's header: the log's text itself is not loaded.
const LOGS_WALK: Walk = { cursor: LOGS_CURSOR, held: "log IS NOT NULL", empty: "log = NULL", waitForLate: true };

/** One bounded step of a walk: empties what the old jobs in it hold; returns the sum emptied. */
async function walk(db: D1Database, w: Walk, cutoff: number): Promise<number> {
  const from =
    (await db.prepare("SELECT value FROM counters WHERE name = ?").bind(w.cursor).first<{ value: number }>())?.value ??
    0;
  if (from >= cutoff) return 0;
  const { results } = await db
    .prepare(
      `SELECT id, updated_at < ? AS old, ${w.held} AS n FROM jobs
       WHERE id >= ? AND id < ? ORDER BY id LIMIT ?`,
    )
    .bind(cutoff, idAt(from), idAt(cutoff), JOBS_PER_RUN)
    .all<{ id: string; old: number; n: number }>();
  const due = results.filter((r) => r.old === 1 && r.n > 0);
  if (due.length > 0) {
    await db
      .prepare(`UPDATE jobs SET ${w.empty} WHERE id IN (SELECT value FROM json_each(?))`)
      .bind(JSON.stringify(due.map((r) => r.id)))
      .run();
  }
  // A full page stops at its last job (its millisecond is looked at again next time, which is
  // harmless); a short one reached the cutoff. A run always moves on, so it cannot stall —
  // but for a walk that waits at a late job, which is past the cutoff once it has aged as long.
  const last = results.at(-1);
  let reached =
    results.length < JOBS_PER_RUN || !last ? cutoff : Math.min(cutoff, Math.max(from + 1, timeOf(last.id) || 0));
  const late = w.waitForLate ? results.find((r) => r.old === 0 && r.n > 0) : undefined;
  const lateAt = late ? timeOf(late.id) : Number.NaN;
  if (Number.isFinite(lateAt)) reached = Math.min(reached, Math.max(from, lateAt));
  await db
    .prepare("INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value")
    .bind(w.cursor, reached)
    .run();
  return due.reduce((sum, r) => sum + r.n, 0);
}
