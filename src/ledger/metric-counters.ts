// /metrics kept incrementally: each job event, as it is written to D1, adds to the counters it
// moves (jobs by status, the two latency histograms, re-dispatches) in the same batch, all in
// one JSON row (job_metrics), so a scrape reads one row however long the history is.
import { isTerminal } from "../../protocol/index.ts";

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
    // Its own bucket, not every larger one: the cumulative buckets and the count are added up
    // when /metrics is read (histogramFrom).
    const { histogram, ms } = e.measure;
    const le = BUCKETS[histogram].find((b) => ms / 1000 <= b);
    add(`hist:${histogram}:le:${le ?? "+Inf"}`, 1);
    add(`hist:${histogram}:sum_ms`, ms);
  }
  return d;
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
