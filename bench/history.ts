// `npm run bench:history -- --history 100000`: does the cost of the hot and periodic paths stay
// flat as history grows? Seeds N finished jobs (5 events each, on their rows) into the local D1
// through the real schema (migrations applied, then the metrics row computed from that history by
// the same counterDeltas the write path uses), starts `wrangler dev` with one real agent, and measures
// submit→SUCCEEDED, the first page of GET /api/jobs, /metrics, /health and the Sentinel's cron
// run — beside the same figures on an empty ledger. Not a test: nothing is asserted.
import { readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import { eventJson } from "../src/ledger/job-events.ts";
import { counterDeltas, type HistogramName } from "../src/ledger/metric-counters.ts";
import { type AgentProcess, startAgent } from "../test/helpers/node/agent-process.ts";
import { ApiClient } from "../test/helpers/node/api-client.ts";
import { makeGitRepo } from "../test/helpers/node/git-repo.ts";
import { waitFor } from "../test/helpers/node/wait.ts";
import { applyMigrations, startWorker } from "../test/helpers/node/wrangler-dev.ts";

const { values: flags } = parseArgs({
  options: { history: { type: "string", default: "100000" }, runs: { type: "string", default: "20" } },
});
const HISTORY = Number(flags.history);
const RUNS = Number(flags.runs);
const say = (m: string) => process.stderr.write(`[history] ${m}\n`);

const p50 = (v: number[]) => [...v].sort((a, b) => a - b)[Math.max(0, Math.ceil(v.length / 2) - 1)] ?? Number.NaN;
const round = (n: number) => Math.round(n * 10) / 10;

function d1File(persistDir: string): string {
  const dir = join(persistDir, "v3/d1/miniflare-D1DatabaseObject");
  const file = readdirSync(dir).find((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite");
  if (!file) throw new Error(`no D1 database under ${dir}`);
  return join(dir, file);
}

/**
 * N finished jobs as the write path leaves them: a job row holding its five events (jobs.events,
 * migration 0012), and the job metrics row holding the counters those events moved.
 */
function seed(persistDir: string, n: number): void {
  const db = new DatabaseSync(d1File(persistDir));
  const now = Date.now();
  const plan = JSON.stringify({ userIntentSummary: "check git status", proposedSteps: [{ action: "git_status" }] });
  const insertJob = db.prepare(
    `INSERT INTO jobs (id, project_id, user_id, chat_id, intent, status, risk, attempt, plan_json, spec_json,
       result_json, error, agent_id, created_at, updated_at, events)
     VALUES (?, 'bench', 'api', NULL, 'check git status', ?, 'READ_ONLY', 1, ?, ?, ?, ?, 'agent_seed', ?, ?, ?)`,
  );
  const metrics = new Map<string, number>();
  db.exec("BEGIN");
  for (let i = 0; i < n; i++) {
    const t0 = now - 30 * 86_400_000 + Math.floor((i / n) * 30 * 86_400_000);
    // Ids as newJobId makes them (creation time first), so retention walks them as it would.
    const id = `job_${t0.toString(36).padStart(9, "0")}${i.toString(16).padStart(12, "0")}`;
    const final = i % 30 === 0 ? "CANCELLED" : i % 14 === 0 ? "FAILED" : "SUCCEEDED";
    const queued = t0 + 40 + (i % 200);
    const running = queued + 20 + (i % 700);
    const done = running + 100 + (i % 5000);
    const result = JSON.stringify({ status: final, steps: [{ exitCode: final === "FAILED" ? 1 : 0, bytes: 812 }] });
    const moves: [string | null, string, string, number, { histogram: HistogramName; ms: number } | null][] = [
      [null, "CREATED", "create", t0, null],
      ["CREATED", "PLANNED", "plan_ready", t0 + 20, null],
      ["PLANNED", "QUEUED", "approve", queued, null],
      ["QUEUED", "RUNNING", "start", running, { histogram: "dispatch", ms: running - queued }],
      [
        "RUNNING",
        final,
        final === "SUCCEEDED" ? "succeed" : final === "FAILED" ? "fail" : "cancel",
        done,
        { histogram: "duration", ms: done - running },
      ],
    ];
    const events = moves.map(([fromStatus, toStatus, event, at, measure], k) => {
      for (const [name, by] of counterDeltas({ fromStatus, toStatus, event, measure }))
        metrics.set(name, (metrics.get(name) ?? 0) + by);
      return eventJson({ seq: k + 1, fromStatus, toStatus, event, at });
    });
    insertJob.run(
      id,
      final,
      plan,
      plan,
      result,
      final === "FAILED" ? "a step failed" : null,
      t0,
      done,
      JSON.stringify(events),
    );
  }
  // The counters /metrics reads, as the incremental path would have left them.
  db.prepare("UPDATE job_metrics SET data = ? WHERE id = 1").run(JSON.stringify(Object.fromEntries(metrics)));
  db.exec("COMMIT");
  db.close();
}

async function timed(times: number, fn: () => Promise<unknown>): Promise<number> {
  const out: number[] = [];
  for (let i = 0; i < times; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return round(p50(out));
}

interface Figures {
  submitToSucceededMs: number;
  jobsFirstPageMs: number;
  metricsMs: number;
  healthMs: number;
  sentinelCronMs: number;
}

async function measure(history: number): Promise<Figures> {
  const persistDir = await mkdtemp(join(tmpdir(), "skynet-hist-"));
  await applyMigrations(persistDir);
  if (history > 0) {
    say(`seeding ${history} finished jobs (${history * 5} events)`);
    seed(persistDir, history);
  }
  const worker = await startWorker({
    persistDir,
    vars: { SKYNET_LOG_LEVEL: "warn", TASK_RATE_LIMIT_PER_MINUTE: "1000" },
    args: ["--test-scheduled"],
  });
  const repo = await makeGitRepo({ "README.md": "# history\n" });
  let agent: AgentProcess | undefined;
  try {
    const client = new ApiClient(worker.url, worker.apiToken);
    agent = await startAgent({
      url: worker.url,
      token: (await client.pair("hist")).token,
      workspace: repo.dir,
      projectId: "bench",
      allowShell: true,
      name: "hist",
    });
    await waitFor(async () => (await client.agentsOnline()) === 1, { what: "agent online", timeoutMs: 60_000 });
    const get = (path: string) => async () => {
      const res = await fetch(`${worker.url}${path}`, { headers: { Authorization: `Bearer ${worker.apiToken}` } });
      if (!res.ok) throw new Error(`${path}: ${res.status}`);
      await res.arrayBuffer();
    };
    const submitToSucceededMs = await timed(RUNS, async () => {
      const id = await client.submit("check git status", "bench");
      const job = await client.waitFinished(id, 30_000);
      if (job.status !== "SUCCEEDED") throw new Error(`${id} ${job.status}`);
    });
    return {
      submitToSucceededMs,
      jobsFirstPageMs: await timed(RUNS, get("/api/jobs?limit=20")),
      metricsMs: await timed(RUNS, get("/metrics")),
      healthMs: await timed(RUNS, get("/health")),
      // wrangler dev's test route runs the scheduled handler (the Sentinel's pass).
      sentinelCronMs: await timed(5, get("/__scheduled?cron=*+*+*+*+*")),
    };
  } finally {
    await agent?.stop();
    await worker.stop();
    await repo.cleanup();
    await rm(persistDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const empty = await measure(0);
  say(`empty: ${JSON.stringify(empty)}`);
  const full = await measure(HISTORY);
  say(`${HISTORY} jobs: ${JSON.stringify(full)}`);
  const rows = (Object.keys(empty) as (keyof Figures)[]).map(
    (k) => `| ${k} | ${empty[k]} | ${full[k]} | ${round(full[k] / empty[k])}× |`,
  );
  process.stdout.write(
    [`| p50 (ms) | empty ledger | ${HISTORY} finished jobs | ratio |`, "|---|---|---|---|", ...rows, ""].join("\n"),
  );
}

await main();
