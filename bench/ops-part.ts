// The bench's cost part (issue #18 item 5): billable operations per READ_ONLY job from the
// dev-only op meter. READ_ONLY jobs are submitted half a second apart and nothing else is asked
// of the system until each job's last effect (its log archived to R2) is in the meter (reading
// the meter is not itself metered), then a further second; the idle rate is subtracted.
import type { ApiClient } from "../test/helpers/node/api-client.ts";
import { waitFor } from "../test/helpers/node/wait.ts";
import { waitFinal } from "./lib/jobs.ts";
import { costRows, diffOps, type OpCounts, readOps, scaleOps } from "./lib/ops.ts";
import { round } from "./lib/stats.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  await waitFor(async () => ((await readOps(url, token))["r2.class_a"] ?? 0) >= jobs, {
    what: "every metered job's archived log",
    timeoutMs: 300_000,
    intervalMs: 250,
  });
  await sleep(1000);
  const raw = diffOps(await readOps(url, token), ops0);
  const windowMs = Date.now() - t0;
  const statuses = await Promise.all(ids.map((id) => waitFinal(client, id)));
  const perJob = scaleOps(diffOps(raw, scaleOps(idle, windowMs / idleMs)), 1 / jobs);
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
    lines: cost.rows.map((r) => ({ ...r, perJob: round(r.perJob, 2), usdPer1000Jobs: round(r.usdPer1000Jobs, 5) })),
    usdPer1000Jobs: round(cost.usdPer1000Jobs, 5),
  };
}
