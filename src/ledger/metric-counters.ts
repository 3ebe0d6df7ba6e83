// /metrics kept incrementally: each job event, as it is written to D1, adds to the counters it
// moves in the same batch, all in one JSON row (job_metrics), so a scrape reads one row however
// long the history is. The row keeps only what grows with history: jobs by final status, the two
// latency histograms, re-dispatches. Jobs in a status they will leave are counted at scrape time
// from the jobs status index (activeStatusCountsSql), bounded by the jobs active now, so a
// transition between two such statuses moves no counter and writes no metrics row (issue 18,
// cost per job: one metrics row per job, at its end, for a job that runs and ends in one commit).
import { isTerminal, JobStatusSchema } from "../../protocol/index.ts";

export const DISPATCH_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
export const DURATION_BUCKETS_S = [0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

export type HistogramName = "dispatch" | "duration";
const BUCKETS: Record<HistogramName, number[]> = { dispatch: DISPATCH_BUCKETS_S, duration: DURATION_BUCKETS_S };

/**
 * The measurement an event carries: dispatch latency for an event into RUNNING (since the job
 * last entered QUEUED), job duration for an event into a final state (since it last entered
 * RUNNING). `since` holds when it entered each status (JobState.enteredAt).
 *
 * The dispatch measurement is counted when RUNNING is written, not carried to the job's end: a
 * short job's RUNNING and end are one commit (one metrics row either way), and a long job's
 * dispatch latency shows while it runs, at the cost of a second metrics row for that job.
 */
export function measureFor(
  toStatus: string,
  at: number,
  entered: Partial<Record<string, number>>,
): { histogram: HistogramName; ms: number } | null {
  const since = toStatus === "RUNNING" ? entered.QUEUED : isTerminal(toStatus) ? entered.RUNNING : undefined;
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
  // A final status is never left, so entering it is the whole count.
  if (e.fromStatus !== e.toStatus && isTerminal(e.toStatus)) add(`jobs_status:${e.toStatus}`, 1);
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

/** The statuses a job leaves again: counted from the jobs status index when /metrics is read. */
export const ACTIVE_STATUSES: readonly string[] = JobStatusSchema.options.filter((s) => !isTerminal(s));

/**
 * Jobs per active status: a range of jobs_status_created_idx per status (EXPLAIN QUERY PLAN:
 * SEARCH jobs USING COVERING INDEX … (status=?)), reading the active jobs' entries only —
 * never the finished history. The statuses are the protocol's own names, written as literals.
 */
export const activeStatusCountsSql = `SELECT status, COUNT(*) AS n FROM jobs WHERE status IN (${ACTIVE_STATUSES.map(
  (s) => `'${s.replace(/[^A-Z_]/g, "")}'`,
).join(", ")}) GROUP BY status`;
