// The statement keeping /metrics' job counters (metric-counters.ts) in their one JSON row.
import { type SQL, sql } from "drizzle-orm";
import { heldSql, safeInt } from "./job-events.ts";
import { type CountedEvent, counterDeltas } from "./metric-counters.ts";
import { jobMetrics } from "./schema.ts";
import type { Db } from "./store.ts";

/** A counter name as a JSON path; names are ours (statuses, bucket bounds), checked all the same. */
function pathOf(name: string): SQL {
  if (!/^[A-Za-z0-9_:.+-]+$/.test(name)) throw new Error(`bad counter name: ${name}`);
  return sql.raw(`'$."${name}"'`);
}

/**
 * One statement adding the counters `events` move to the job metrics row — only for the events
 * the job's row does not hold yet, read before the statement that appends them (this one runs
 * first in the same batch, so they are counted exactly when they are appended: a replayed event
 * counts nothing, and a partial replay counts only the new ones). `notAfter`: the snapshot's time
 * when the append is guarded by it (a row already newer takes no events, so none count).
 * Null when the events move no counter.
 */
export function metricsQuery(
  db: Db,
  jobId: string,
  events: (CountedEvent & { seq: number })[],
  notAfter: number | null,
) {
  const perCounter = new Map<string, { seq: number; by: number }[]>();
  const seen = new Set<number>();
  for (const e of events) {
    // The same event twice in one commit is appended once (appendEventsSql), so counted once.
    if (seen.has(e.seq)) continue;
    seen.add(e.seq);
    for (const [name, by] of counterDeltas(e)) {
      if (by === 0) continue;
      perCounter.set(name, [...(perCounter.get(name) ?? []), { seq: safeInt(e.seq), by: safeInt(by) }]);
    }
  }
  if (perCounter.size === 0) return null;
  // The job's row read once (an aggregate: one row even when the job has none yet).
  const newer = notAfter === null ? sql`0` : sql`updated_at > ${safeInt(notAfter)}`;
  const ev = sql`COALESCE(MAX(events), '[]')`;
  const fresh = new Map(
    events.map((e) => [e.seq, sql`(COALESCE(MAX(${newer}), 0) = 0 AND NOT ${heldSql(ev, e.seq)})`]),
  );
  const sets = [...perCounter].map(([name, parts]) => {
    const added = sql.join(
      parts.map((p) => sql`CASE WHEN ${fresh.get(p.seq)} THEN ${sql.raw(String(p.by))} ELSE 0 END`),
      sql` + `,
    );
    return sql`${pathOf(name)}, COALESCE(json_extract(job_metrics.data, ${pathOf(name)}), 0) + ${added}`;
  });
  // One scalar subquery, an aggregate over the job's row (one row even when there is none yet):
  // the job's row and the metrics row are each read once. (A replay rewrites the row unchanged.)
  return db
    .update(jobMetrics)
    .set({ data: sql`(SELECT json_set(job_metrics.data, ${sql.join(sets, sql`, `)}) FROM jobs WHERE id = ${jobId})` })
    .where(sql`${jobMetrics.id} = 1`);
}
