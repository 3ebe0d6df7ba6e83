// D1 history retention, bounded per run so no periodic path reads all of history: the
// Sentinel deletes pairing-failure counters of past minutes (every run) and, once an hour,
// the oldest job events past HISTORY_RETENTION_DAYS — at most EVENTS_PER_RUN rows from the
// start of the table (oldest first: its key begins with the job id, which begins with the
// job's creation time), so each run reads a fixed number of rows.
// Job rows stay (the record; /metrics counts them incrementally). R2 keeps its own lifecycle
// rules (scripts/r2-lifecycle.ts) and a final job's Durable Object deletes its own storage.
import { IDEMPOTENCY_WINDOW_MS } from "../http/idempotency.ts";

export const EVENTS_PER_RUN = 5000;

export interface RetentionReport {
  eventsDeleted: number;
  countersDeleted: number;
}

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
  let eventsDeleted = 0;
  if (new Date(now).getUTCMinutes() === 0) {
    const events = await db
      .prepare(
        `DELETE FROM job_events WHERE (job_id, seq) IN (
           SELECT job_id, seq FROM (SELECT job_id, seq, at FROM job_events ORDER BY job_id, seq LIMIT ?) WHERE at < ?)`,
      )
      .bind(EVENTS_PER_RUN, now - historyRetentionDays * 86_400_000)
      .run();
    eventsDeleted = events.meta.changes;
  }
  return { eventsDeleted, countersDeleted: counters.meta.changes };
}
