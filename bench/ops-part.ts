// The bench's cost part (issue #18 item 5): billable operations per READ_ONLY job from the
// dev-only op meter. READ_ONLY jobs are submitted half a second apart and nothing else is asked
// of the system until the meter has not moved for QUIET_MS (reading the meter is not itself
// metered), so timers the jobs left behind have fired; the idle rate is subtracted.
import type { ApiClient } from "../test/helpers/node/api-client.ts";
import { waitFor } from "../test/helpers/node/wait.ts";
import { waitFinal } from "./lib/jobs.ts";
import { costRows, diffOps, type OpCounts, readOps, scaleOps } from "./lib/ops.ts";
import { round } from "./lib/stats.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Longer than the JobDO's drain backstop (DRAIN_BACKSTOP_MS, 5 s) with room to spare. */
const QUIET_MS = 7_000;

export async function meterJobs(
  url: string,
  token: string,
  client: ApiClient,
  jobs: number,
  idle: OpCounts,
  idleMs: number,
) {
  const ops0 = await readOps(url, token, true);
  const t0 = Date.now();
  const ids: string[] = [];
  for (let i = 0; i < jobs; i++) {
    ids.push(await client.submit("check git status", "bench"));
    await sleep(500);
  }
  // The meter still for longer than any timer a job leaves behind on the normal path (the
  // JobDO's drain backstop alarm, 5 s after create): what that alarm does when it fires belongs
  // to the job. Waiting for "the archive is in R2" alone ended the window before those alarms
  // fired. The jobs' statuses are read after the window (the API calls would be metered).
  let last = "";
  let stillSince = Date.now();
  await waitFor(
    async () => {
      const now = JSON.stringify(diffOps(await readOps(url, token), ops0));
      if (now !== last) {
        last = now;
        stillSince = Date.now();
      }
      return Date.now() - stillSince >= QUIET_MS;
    },
    { what: "the metered jobs' last operations", timeoutMs: 300_000, intervalMs: 250 },
  );
  const raw = diffOps(await readOps(url, token), ops0);
  const windowMs = Date.now() - t0;
  const statuses = await Promise.all(ids.map((id) => waitFinal(client, id)));
  // The idle rate comes from a 10 s sample, so a periodic write (an agent's load, every 30 s) can
  // make it larger than what the window really had of it: nothing goes below zero.
  const background = scaleOps(idle, windowMs / idleMs);
  const perJob = scaleOps(
    Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Math.max(0, v - (background[k] ?? 0))])),
    1 / jobs,
  );
  const cost = costRows(perJob);
  return {
    jobs,
    allSucceeded: statuses.every((s) => s === "SUCCEEDED"),
    perJob: Object.fromEntries(
      Object.entries(perJob)
        .filter(([k]) => !k.includes(":"))
        .map(([k, v]) => [k, round(v, 2)]),
    ),
    /** Where the Durable Object rows go: per statement and per kv key, most first. */
    topStorage: Object.entries(perJob)
      .filter(([k]) => k.startsWith("sql:") || k.startsWith("kv:"))
      .sort(([, a], [, b]) => b - a)
      .slice(0, 12)
      .map(([what, n]) => ({ what, perJob: round(n, 2) })),
    /** Where the D1 rows go: per statement, most first. */
    topD1: Object.entries(perJob)
      .filter(([k]) => k.startsWith("d1:"))
      .sort(([, a], [, b]) => b - a)
      .slice(0, 16)
      .map(([what, n]) => ({ what, perJob: round(n, 2) })),
    backgroundPerMinute: Object.fromEntries(
      Object.entries(idle)
        .filter(([k]) => !k.includes(":"))
        .map(([k, v]) => [k, round((v * 60_000) / idleMs, 1)]),
    ),
    billablePerJob: round(cost.billablePerJob, 1),
    issueListPerJob: round(cost.issueListPerJob, 1),
    lines: cost.rows.map((r) => ({ ...r, perJob: round(r.perJob, 2), usdPer1000Jobs: round(r.usdPer1000Jobs, 5) })),
    usdPer1000Jobs: round(cost.usdPer1000Jobs, 5),
  };
}
