// Billable operations per job, from the dev-only op meter (src/lib/op-meter.ts, SKYNET_OP_METER=1),
// and their price at Cloudflare's published rates (stated with the day they were read; see
// BENCHMARKS.md for the sources).

export type OpCounts = Record<string, number>;

export async function readOps(url: string, token: string, reset = false): Promise<OpCounts> {
  const res = await fetch(`${url}/__dev/op-meter`, {
    method: reset ? "POST" : "GET",
    headers: { Authorization: `Bearer ${token}` },
  });
  if (res.status !== 200) throw new Error(`op meter: ${res.status} (is SKYNET_OP_METER=1 set?)`);
  return ((await res.json()) as { ops: OpCounts }).ops;
}

export function diffOps(after: OpCounts, before: OpCounts): OpCounts {
  const out: OpCounts = {};
  for (const k of new Set([...Object.keys(after), ...Object.keys(before)])) {
    const d = (after[k] ?? 0) - (before[k] ?? 0);
    if (d) out[k] = d;
  }
  return out;
}

export function scaleOps(ops: OpCounts, factor: number): OpCounts {
  return Object.fromEntries(Object.entries(ops).map(([k, n]) => [k, n * factor]));
}

/** One billing line: what it counts (from the meter's kinds) and its price per million. */
interface Line {
  name: string;
  count: (o: OpCounts) => number;
  usdPerMillion: number;
  source: string;
}

const n = (o: OpCounts, ...kinds: string[]) => kinds.reduce((a, k) => a + (o[k] ?? 0), 0);

/** Rates read on 2026-11-25 (Workers Paid plan, beyond the included monthly amounts). */
export const RATES_READ_ON = "2026-11-25";
export const LINES: Line[] = [
  {
    name: "Worker requests (fetch, queue, cron invocations)",
    count: (o) => n(o, "worker.fetch", "worker.queue", "worker.scheduled"),
    usdPerMillion: 0.3,
    source: "workers",
  },
  {
    name: "Durable Object requests (RPC calls, fetches, alarms; WebSocket messages at 20:1)",
    count: (o) => n(o, "do.rpc", "do.fetch", "do.alarm") + n(o, "do.ws_messages") / 20,
    usdPerMillion: 0.15,
    source: "durable-objects",
  },
  {
    name: "Durable Object rows read (SQL cursors + kv reads)",
    count: (o) => n(o, "do.sql_rows_read", "do.kv_reads"),
    usdPerMillion: 0.001,
    source: "durable-objects",
  },
  {
    name: "Durable Object rows written (SQL cursors + kv writes + alarm writes)",
    count: (o) => n(o, "do.sql_rows_written", "do.kv_writes", "do.alarm_writes"),
    usdPerMillion: 1.0,
    source: "durable-objects",
  },
  { name: "D1 rows read", count: (o) => n(o, "d1.rows_read"), usdPerMillion: 0.001, source: "d1" },
  { name: "D1 rows written", count: (o) => n(o, "d1.rows_written"), usdPerMillion: 1.0, source: "d1" },
  {
    name: "Queue operations (write + read + delete per message)",
    count: (o) => n(o, "queue.writes", "queue.reads", "queue.deletes"),
    usdPerMillion: 0.4,
    source: "queues",
  },
  { name: "R2 Class A", count: (o) => n(o, "r2.class_a"), usdPerMillion: 4.5, source: "r2" },
  { name: "R2 Class B", count: (o) => n(o, "r2.class_b"), usdPerMillion: 0.36, source: "r2" },
];

export interface CostRow {
  name: string;
  perJob: number;
  usdPer1000Jobs: number;
}

/**
 * Every line summed, and the sum of the lines issue #18 lists ("Durable Object requests and
 * storage writes", D1 rows read and written, queue operations, R2): Durable Object rows read,
 * priced a thousandth of a write, are not among them.
 */
export function costRows(perJob: OpCounts): {
  rows: CostRow[];
  billablePerJob: number;
  issueListPerJob: number;
  usdPer1000Jobs: number;
} {
  const rows = LINES.map((l) => {
    const c = l.count(perJob);
    return { name: l.name, perJob: c, usdPer1000Jobs: (c * 1000 * l.usdPerMillion) / 1e6 };
  });
  const billablePerJob = rows.reduce((a, r) => a + r.perJob, 0);
  return {
    rows,
    billablePerJob,
    issueListPerJob: billablePerJob - n(perJob, "do.sql_rows_read", "do.kv_reads"),
    usdPer1000Jobs: rows.reduce((a, r) => a + r.usdPer1000Jobs, 0),
  };
}
