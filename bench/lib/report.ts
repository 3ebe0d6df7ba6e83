// The BENCHMARKS.md table written by `npm run bench` (other benchmarks' sections are kept below it).
import { spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { RATES_READ_ON } from "./ops.ts";
import { round } from "./stats.ts";

export async function machineInfo(root: string) {
  return {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memoryGiB: round(totalmem() / 1024 ** 3),
    node: process.version,
    kernel: spawnSync("uname", ["-sr"]).stdout.toString().trim(),
    wrangler: (
      JSON.parse(await readFile(join(root, "node_modules/wrangler/package.json"), "utf8")) as { version: string }
    ).version,
  };
}

interface P {
  p50Ms: number;
  p99Ms: number;
  n: number;
}
/** A part the run skipped (its count was 0) is null: every figure of it reads "not run". */
export interface Result {
  startedAt: string;
  machine: Awaited<ReturnType<typeof machineInfo>>;
  agents: number;
  direct: { latency: P; spawnsPerSecond: number; loops: number };
  readOnlyJob:
    | null
    | (P & {
        overheadP50Ms: number;
        overheadP99Ms: number;
        workerdCpuMsPerJob: number | null;
        /** Submit → the wait's answer that the job ended, by the bench's clock; absent before session 8. */
        clientTold?: P;
      });
  pickupQueuedToRunning: P | null;
  throughput: null | {
    jobs: number;
    agents: number;
    jobsPerSecond: number;
    totalSeconds: number;
    ratioToDirect: number;
    workerdCpuMsPerJob: number | null;
    cpuWindowCoveredAllJobs: boolean;
    exactlyOnce: boolean;
    linesWritten: number;
    uniqueJobs: number;
    perAgent: number[];
  };
  logStreaming: null | {
    bytes: number;
    /** x's (`head -c N /dev/zero | tr`). */
    mbPerSecond: number;
    byteExact: boolean;
    /** Varied log lines (bench/lib/log-text.ts); absent in results from before session 8. */
    text?: { mbPerSecond: number; byteExact: boolean; cpuMsPerMb?: CpuPerMb };
    cpuMsPerMb?: CpuPerMb;
    agentPeakRssMb: number;
  };
  opsPerReadOnlyJob: null | {
    jobs: number;
    allSucceeded: boolean;
    billablePerJob: number;
    /** The same without Durable Object rows read (issue #18's own list); absent in older results. */
    issueListPerJob?: number;
    usdPer1000Jobs: number;
    lines: { name: string; perJob: number; usdPer1000Jobs: number }[];
    backgroundPerMinute: Record<string, number>;
    topStorage: { what: string; perJob: number }[];
  };
  chatLoad: null | {
    updates: number;
    users: number;
    alone: P;
    webhook: P;
    errors: number;
    refusedBotApiCalls: number;
    repliesInOrder: boolean | "unknown";
  };
}

export const NOT_RUN = "not run";

/** A measured figure with its unit; "unknown" when the part ran but could not measure it. */
const fig = (v: number | null | undefined, unit = ""): string =>
  v === null || v === undefined || !Number.isFinite(v) ? "unknown" : `${v}${unit}`;
const pair = (p: P, unit = " ms"): string => `${fig(p.p50Ms)} / ${fig(p.p99Ms)}${unit}`;
/** CPU ms per MB of log on each side of the agent's socket. */
interface CpuPerMb {
  workerd: number;
  agent: number;
}
const cpuPair = (c: CpuPerMb): string => `${fig(c.workerd)} / ${fig(c.agent)} ms`;

const SOURCES = `Rates (Workers Paid, beyond the monthly inclusions), read on ${RATES_READ_ON}:
Worker requests $0.30/M and CPU $0.02/M ms (stated as "identical to Workers Standard pricing" on
https://developers.cloudflare.com/workflows/reference/pricing/ ; the Workers page itself,
https://developers.cloudflare.com/workers/platform/pricing/, was not in the searchable copy);
Durable Object requests $0.15/M including RPC sessions (each stub method call), WebSocket messages
(20:1) and alarm invocations (https://developers.cloudflare.com/durable-objects/platform/pricing);
SQLite-backed Durable Object rows read $0.001/M and written $1.00/M (assumed equal to D1's: the
storage part of that page was not in the copy read — verify before quoting); D1 rows read $0.001/M,
written $1.00/M (https://developers.cloudflare.com/d1/platform/pricing/, read through a transcription
of that page); Queues $0.40/M operations, one write + one read + one delete per 64 KB message
(https://developers.cloudflare.com/queues/platform/pricing/, read through a transcription); R2
Class A $4.50/M, Class B $0.36/M, deletes free
(https://github.com/cloudflare/cloudflare-docs/blob/production/src/content/docs/r2/pricing.mdx).
Included monthly amounts and the $5 plan fee are left out: the figure is the marginal cost.`;

export function renderTable(r: Result): string {
  const t = r.throughput;
  const o = r.opsPerReadOnlyJob;
  const c = r.chatLoad;
  const l = r.logStreaming;
  const j = r.readOnlyJob;
  const small = (t !== null && t.jobs < 1000) || (j !== null && j.n < 50) || (l !== null && l.bytes < 50 * 1024 * 1024);
  const skipped = [
    j ? "" : "READ_ONLY latency",
    t ? "" : "throughput",
    l ? "" : "log streaming",
    c ? "" : "chat load",
    o ? "" : "op meter",
  ].filter(Boolean);
  const costSection = o
    ? `### Cost per READ_ONLY job (${o.jobs} jobs metered, background subtracted)

| billing line | per job | per 1,000 jobs |
|---|---|---|
${o.lines.map((l) => `| ${l.name} | ${l.perJob} | $${l.usdPer1000Jobs} |`).join("\n")}
| **total** | **${o.billablePerJob}** | **$${o.usdPer1000Jobs}** |

Background while idle (the agents' heartbeats), per minute: ${
        Object.entries(o.backgroundPerMinute)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ") || "none"
      }.

Where the Durable Object rows go (per job, the largest first; statements as the code sends them):

${o.topStorage.map((t) => `- ${t.perJob} × \`${t.what.replaceAll("`", "'")}\``).join("\n")}`
    : "### Cost per READ_ONLY job\n\nNot measured in this run (`--ops-jobs 0`: the op meter was off).";
  const rows: [string, string][] = [
    ["direct: `git status` spawned by the bench, p50 / p99", pair(r.direct.latency)],
    [`direct: ${r.direct.loops} loops spawning the throughput command`, `${fig(r.direct.spawnsPerSecond)} spawns/s`],
    [`READ_ONLY job submit → SUCCEEDED (${j ? j.n : 0} sequential), p50 / p99`, j ? pair(j) : NOT_RUN],
    [
      "READ_ONLY job submit → the client's wait answered, p50 / p99",
      j?.clientTold ? pair(j.clientTold) : j ? "unknown" : NOT_RUN,
    ],
    [
      "overhead over the direct `git status`, p50 / p99",
      j ? `${fig(j.overheadP50Ms)} / ${fig(j.overheadP99Ms)} ms` : NOT_RUN,
    ],
    [
      "workerd CPU per READ_ONLY job (latency part, with the bench's wait)",
      j ? fig(j.workerdCpuMsPerJob, " ms") : NOT_RUN,
    ],
    ["pickup QUEUED → RUNNING, p50 / p99", r.pickupQueuedToRunning ? pair(r.pickupQueuedToRunning) : NOT_RUN],
    [
      `throughput: ${t ? t.jobs : 0} jobs over ${r.agents} agents`,
      t
        ? `${fig(t.jobsPerSecond)} jobs/s (${fig(t.totalSeconds)} s), **${fig(t.ratioToDirect)} of the direct limit**`
        : NOT_RUN,
    ],
    [
      "workerd CPU per throughput job",
      t
        ? `${fig(t.workerdCpuMsPerJob, " ms")}${t.cpuWindowCoveredAllJobs ? "" : " (the CPU window closed before the last job finished: a lower bound)"}`
        : NOT_RUN,
    ],
    [
      "exactly once (one line per job in the workspaces)",
      t
        ? `${t.exactlyOnce ? "yes" : "NO"}: ${t.linesWritten} lines, ${t.uniqueJobs} distinct, per agent ${t.perAgent.join("/")}`
        : NOT_RUN,
    ],
    [
      `log streaming: one step printing ${l ? l.bytes / 1024 / 1024 : 0} MB of x's`,
      l ? `${fig(l.mbPerSecond)} MB/s into the stored log, byte-exact: ${l.byteExact ? "yes" : "NO"}` : NOT_RUN,
    ],
    [
      `log streaming: one step printing ${l ? l.bytes / 1024 / 1024 : 0} MB of varied log lines`,
      l?.text
        ? `${fig(l.text.mbPerSecond)} MB/s into the stored log, byte-exact: ${l.text.byteExact ? "yes" : "NO"}`
        : l
          ? "unknown"
          : NOT_RUN,
    ],
    [
      "log streaming: CPU ms per MB, workerd / agent (x's; varied lines)",
      l?.cpuMsPerMb && l.text?.cpuMsPerMb
        ? `${cpuPair(l.cpuMsPerMb)}; ${cpuPair(l.text.cpuMsPerMb)}`
        : l
          ? "unknown"
          : NOT_RUN,
    ],
    ["agent peak RSS during the log tests", l ? fig(l.agentPeakRssMb, " MB") : NOT_RUN],
    ["chat: one update alone, webhook answered, p50", c ? fig(c.alone.p50Ms, " ms") : NOT_RUN],
    [
      `chat: ${c ? c.updates : 0} updates from ${c ? c.users : 0} users at once, webhook answered p50 / p99`,
      c ? pair(c.webhook) : NOT_RUN,
    ],
    [
      "chat: errors / refused Bot API calls / replies in order per chat",
      c ? `${c.errors} / ${c.refusedBotApiCalls} / ${c.repliesInOrder}` : NOT_RUN,
    ],
    [
      "billable operations per READ_ONLY job (target ≤ 25): on the issue's list (DO rows read left out) / all counted",
      o
        ? `${o.issueListPerJob ?? "unknown"} / ${o.billablePerJob}${o.allSucceeded ? "" : " (not every metered job succeeded: unreliable)"}`
        : NOT_RUN,
    ],
  ];
  return `# Benchmarks

Measured by \`npm run bench\` (bench/run.ts) on \`wrangler dev\` (local workerd, D1, R2, Queues, Durable
Objects, op meter ${o ? "on" : "off"}) with ${r.agents} agents (4 slots each)${l ? " plus one for the log test" : ""}, all on one
machine. Latest run: ${r.startedAt}; raw results in \`bench/results/\`.${
    small
      ? "\n\n**A small validation run (fewer jobs than the defaults, possibly on a shared machine): to be rerun with the defaults on a quiet machine; not a finding.**"
      : ""
  }${skipped.length ? `\n\nParts not run in this run (their count was 0): ${skipped.join(", ")}.` : ""}

Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, ${r.machine.kernel}, Node ${r.machine.node}, wrangler ${r.machine.wrangler}.

| measure | result |
|---|---|
${rows.map(([m, v]) => `| ${m} | ${v} |`).join("\n")}

${costSection}

### What each figure means

- **direct**: the command spawned by the bench process itself with \`execFile\`, in the same run; the
  floor. The latency part's command is \`git status\` (what a "check git status" job runs); the
  throughput command is \`sh -c 'git status >/dev/null && echo <job> >> ran.txt'\` (the same git status
  plus the line that proves exactly-once), spawned by four parallel loops in four repositories.
- **submit → SUCCEEDED**: from just before \`POST /api/tasks\` to the SUCCEEDED transition's time in the
  ledger (the JobDO's clock, same machine). The bench waits with one long-poll per job
  (\`GET /api/jobs/:id/wait\`) and reads the ledger after: the only load it adds while a job runs is
  that wait, one request to the job's object, answered at the commit that ends the job (since
  session 8; it re-read the job every 250 ms before, and was a client poll every 2 ms before that),
  so the next job is submitted as soon as the last one is known to be done. The latency command and the throughput command differ only by the marker line; each part
  is compared with a direct spawn of exactly its own command.
  **Overhead** = that minus the direct \`git status\` (p50 from p50, p99 from p99). **The client's wait
  answered**: the same start, to the moment the bench's \`GET /api/jobs/:id/wait\` returns the final job,
  by the bench's own clock: what a client that submits and waits sees.
- **pickup**: QUEUED → RUNNING in the ledger. Since session 7 RUNNING is dated when the agent took
  the attempt: the accept's arrival less the time it waited on the agent to travel with the first
  frames (\`heldMs\`, bounded by QUEUED and the arrival); before, it was the batch's arrival.
- **throughput**: first submit to the last SUCCEEDED in the ledger; the bench watches the workspaces'
  files (not the API) to know when every command ran. **Ratio** = jobs/s ÷ direct spawns/s.
- **workerd CPU per job**: utime+stime of the workerd processes under the bench (from /proc), minus
  the idle rate measured over the idle window, ÷ jobs; for READ_ONLY jobs across the latency part
  (including the bench's one long-poll per job), for the throughput jobs across that part.
  Local workerd runs the Worker, every Durable Object, the D1/R2/Queues simulators and the op meter
  (when on): an upper bound on what production bills as Worker/DO CPU.
- **billable operations**: counted by the dev-only op meter (\`SKYNET_OP_METER=1\`,
  src/lib/op-meter.ts) at the Worker's entry points and inside each Durable Object: Worker invocations;
  Durable Object requests (every stub method call or fetch, alarms, incoming WebSocket messages ÷ 20);
  Durable Object rows read/written (SQL cursors' rowsRead/rowsWritten, one row per kv get/put/delete,
  setAlarm/deleteAlarm as a write); D1 rows from each result's meta; queue write + read + delete per
  message; R2 Class A (put, list, multipart) and B (get, head). READ_ONLY jobs are submitted
  half a second apart and nothing else is asked of the system until the meter has stood still for
  7 s (reading the meter is not metered), longer than the 5 s drain backstop alarm a job leaves
  behind, so what that alarm does when it fires is counted; the idle rate measured beforehand
  (heartbeats) is subtracted for the window's length, and the total is ÷ jobs. Each counted row is
  one operation in the total. Not in the window: the purge of the job's Durable Object storage
  after JOB_STATE_RETENTION_DAYS (one alarm invocation and the deletion of its remaining rows).
- **log streaming**: one step's output, from its submit to its SUCCEEDED in the ledger, then read
  back whole (\`GET /api/jobs/:id/log\`) and compared byte for byte. Two kinds, one after the other on
  the same agent: x's (\`head -c N /dev/zero | tr '\\0' x\`) and varied log lines (a seeded generator,
  bench/lib/log-text.ts; \`cat\` of a file of them), which deflate to ≈ 0.3 as real logs do. The
  agent sends uncompressed on a loopback connection (the bench's; since session 9) and compresses
  (zlib level 1) anywhere else. **CPU ms per MB**: utime+stime of the workerd processes and of the
  log agent, sampled every 20 ms, from the submit to the SUCCEEDED time in the ledger (not the
  archive to R2 that follows), ÷ MB: which side of the socket is the bottleneck. The agent's peak
  RSS (VmHWM) covers both parts.
- **chat**: real update JSON posted to \`/telegram/webhook\` by several allowed users at once (each
  user one at a time), commands rotating through /task, /jobs, /status, /help, /agents, against the
  strict Bot API stand-in. "In order": per chat, the replies recognised by each command's reply
  signature (first two words, calibrated one at a time beforehand) come in the order sent; "unknown"
  when two commands' replies cannot be told apart.

${SOURCES}
`;
}

export async function writeReport(root: string, result: Result): Promise<void> {
  // Other benchmarks' sections (npm run soak, bench:history) are theirs: keep them below the table.
  const path = join(root, "BENCHMARKS.md");
  const previous = await readFile(path, "utf8").catch(() => "");
  const sections = previous.match(/<!-- (\w+):start -->[\s\S]*?<!-- \1:end -->/g) ?? [];
  const table = renderTable(result);
  await writeFile(path, [table, ...sections].join("\n") + (sections.length ? "\n" : ""));
  console.log(table);
}
