// /metrics kept incrementally: each job event, as it is written to D1, adds to the counters it
// moves (jobs by status, the two latency histograms, re-dispatches) in the same batch, so a
// scrape reads a few dozen counter rows however long the history is.
import { sql } from "drizzle-orm";
import { isTerminal } from "../../protocol/index.ts";
import { counters } from "./schema.ts";
import type { Db } from "./store.ts";

export const DISPATCH_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
export const DURATION_BUCKETS_S = [0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

export type HistogramName = "dispatch" | "duration";
const BUCKETS: Record<HistogramName, number[]> = { dispatch: DISPATCH_BUCKETS_S, duration: DURATION_BUCKETS_S };

/**
 * The measurement an event carries: dispatch latency for an event into RUNNING (since the
 * latest event into QUEUED), job duration for an event into a final state (since the latest
 * event into RUNNING) — the definitions /metrics has always used.
 */
export function measureFor(
  toStatus: string,
  at: number,
  lastAt: Partial<Record<string, number>>,
): { histogram: HistogramName; ms: number } | null {
  const since = toStatus === "RUNNING" ? lastAt.QUEUED : isTerminal(toStatus) ? lastAt.RUNNING : undefined;
  if (since === undefined) return null;
  return { histogram: toStatus === "RUNNING" ? "dispatch" : "duration", ms: at - since };
}

export interface CountedEvent {
  fromStatus: string | null;
  toStatus: string;
  event: string;
  measure?: { histogram: HistogramName; ms: number } | null;
}

/** Counter name → amount this event adds. */
export function counterDeltas(e: CountedEvent): Map<string, number> {
  const d = new Map<string, number>();
  const add = (name: string, by: number) => d.set(name, (d.get(name) ?? 0) + by);
  if (e.fromStatus !== e.toStatus) {
    add(`jobs_status:${e.toStatus}`, 1);
    if (e.fromStatus !== null) add(`jobs_status:${e.fromStatus}`, -1);
  }
  if (e.event === "requeue") add("events:requeue", 1);
  if (e.measure) {
    // One bucket row (its own bucket, not every larger one) and the sum, which is stored on that
    // bucket row (sum_ms): one row written per measurement; the cumulative buckets, the count and
    // the sum are added up when /metrics is read (readCounters).
    const { histogram, ms } = e.measure;
    const le = BUCKETS[histogram].find((b) => ms / 1000 <= b);
    add(`hist:${histogram}:le:${le ?? "+Inf"}`, 1);
    add(`hist:${histogram}:sum_ms`, ms);
  }
  return d;
}

/**
 * The summed deltas of several events inserted by the statement just before it (one
 * multi-row insert of `events.length` rows): one upsert per distinct counter, not per event.
 * All new (changes() = n): added. None new (a retried batch): nothing. Some new, some not (a
 * retry grouping items differently): the value is NULL, the NOT NULL column refuses it and the
 * batch fails, so the caller writes the events one by one, each counted by its own insert.
 */
export function summedCountersQuery(db: Db, events: CountedEvent[]) {
  const sums = new Map<string, number>();
  let moved = false;
  for (const e of events) {
    for (const [name, by] of counterDeltas(e)) {
      sums.set(name, (sums.get(name) ?? 0) + by);
      moved = true;
    }
  }
  // A histogram's sum goes onto one of its bucket rows of this statement (there is one for each
  // measurement): only the total over the histogram's rows is ever read.
  const sumOn = new Map<string, number>();
  for (const [name, by] of sums) {
    const m = /^hist:(\w+):sum_ms$/.exec(name);
    if (!m) continue;
    sums.delete(name);
    const bucket = [...sums.keys()].find((k) => k.startsWith(`hist:${m[1]}:le:`));
    if (bucket) sumOn.set(bucket, by);
  }
  const deltas = [...sums].filter(([name, by]) => by !== 0 || sumOn.has(name));
  // Deltas that cancel out still need a row to carry the partial-insert check.
  if (deltas.length === 0 && moved && events.length > 1) deltas.push([[...sums.keys()][0] as string, 0]);
  if (deltas.length === 0) return null;
  const values = sql.join(
    deltas.map(([name, by]) => sql`(${name}, ${by}, ${sumOn.get(name) ?? 0})`),
    sql`, `,
  );
  const n = events.length;
  return db
    .insert(counters)
    .select(
      sql`SELECT column1, CASE WHEN changes() = ${n} THEN column2 END, column3 FROM (VALUES ${values}) WHERE changes() > 0`,
    )
    .onConflictDoUpdate({
      target: counters.name,
      set: { value: sql`${counters.value} + excluded.value`, sumMs: sql`${counters.sumMs} + excluded.sum_ms` },
    });
}

export interface Histogram {
  buckets: number[];
  counts: number[];
  count: number;
  sumS: number;
}

export function histogramFrom(counters: Record<string, number>, name: HistogramName): Histogram {
  const buckets = BUCKETS[name];
  let running = 0;
  const counts = buckets.map((le) => {
    running += counters[`hist:${name}:le:${le}`] ?? 0;
    return running;
  });
  return {
    buckets,
    counts,
    count: running + (counters[`hist:${name}:le:+Inf`] ?? 0),
    sumS: (counters[`hist:${name}:sum_ms`] ?? 0) / 1000,
  };
}
