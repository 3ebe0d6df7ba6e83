// The job parts of `npm run bench` (READ_ONLY latency, throughput, log streaming). Each returns its
// figures, measured in this run; bench/run.ts skips a part whose count is 0 and reports it as not run.
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ApiClient } from "../test/helpers/node/api-client.ts";
import { waitFor } from "../test/helpers/node/wait.ts";
import { cpuSampler, workerdCpuMs, workerdPids } from "./lib/cpu.ts";
import { reachedAt, waitFinal } from "./lib/jobs.ts";
import { logText } from "./lib/log-text.ts";
import { mapLimit, p50p99, round } from "./lib/stats.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU ms per job over a window, the idle rate subtracted; null when either is unknown. */
function cpuPerJob(c0: number | null, c1: number | null, idlePerS: number | null, windowMs: number, jobs: number) {
  if (c0 === null || c1 === null || idlePerS === null || jobs === 0) return null;
  return round((c1 - c0 - idlePerS * (windowMs / 1000)) / jobs, 2);
}

export function executeSpec(id: string, projectId: string, argv: string[]) {
  return {
    executionSpec: {
      jobId: id,
      attempt: 1,
      provider: "openclaw",
      projectId,
      timeoutS: 3600,
      steps: [{ id: "s1", action: "run_command", params: { argv }, risk: "ADMIN", timeoutS: 3600 }],
    },
  };
}

/** READ_ONLY jobs one at a time: submit → SUCCEEDED by the ledger's clock, and QUEUED → RUNNING. */
export async function latencyPart(
  client: ApiClient,
  runs: number,
  directP50: number,
  directP99: number,
  idle: number | null,
) {
  const cpu0 = await workerdCpuMs();
  const t0 = Date.now();
  const submitted: { id: string; t: number }[] = [];
  // Also timed as a client sees it: from the submit until the wait answers that the job ended.
  const told: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = Date.now();
    const id = await client.submit("check git status", "bench");
    const status = await waitFinal(client, id);
    told.push(Date.now() - t);
    if (status !== "SUCCEEDED") throw new Error(`${id} ended ${status}`);
    submitted.push({ id, t });
  }
  // Read right after the part, so the CPU figure holds only the jobs and their waits.
  const cpu1 = await workerdCpuMs();
  const windowMs = Date.now() - t0;
  const e2e: number[] = [];
  const pickup: number[] = [];
  for (const { id, t } of submitted) {
    const done = await reachedAt(client, id, "SUCCEEDED");
    const queued = await reachedAt(client, id, "QUEUED");
    const running = await reachedAt(client, id, "RUNNING");
    if (done !== null) e2e.push(done - t);
    if (queued !== null && running !== null) pickup.push(running - queued);
  }
  const latency = p50p99(e2e);
  return {
    readOnlyJob: {
      runs,
      ...latency,
      overheadP50Ms: round(latency.p50Ms - directP50),
      overheadP99Ms: round(latency.p99Ms - directP99),
      workerdCpuMsPerJob: cpuPerJob(cpu0, cpu1, idle, windowMs, runs),
      clientTold: p50p99(told),
    },
    pickupQueuedToRunning: p50p99(pickup),
  };
}

export interface ThroughputInput {
  client: ApiClient;
  ids: string[];
  argv: (i: number) => string[];
  agentDirs: string[];
  directPerSecond: number;
  idle: number | null;
}

/** Every job submitted at once (32 in flight); the workspaces' marker lines prove exactly-once. */
export async function throughputPart(o: ThroughputInput) {
  const jobs = o.ids.length;
  const countLines = async () =>
    (await Promise.all(o.agentDirs.map((d) => readFile(join(d, "ran.txt"), "utf8").catch(() => "")))).map((t) =>
      t.split("\n").filter(Boolean),
    );
  const cpu0 = await workerdCpuMs();
  const t0 = Date.now();
  await mapLimit(o.ids, 32, async (id, i) => {
    const res = await o.client.call("/execute", { json: executeSpec(id, "bench", o.argv(i)) });
    if (res.status !== 202) throw new Error(`execute ${id}: ${res.status} ${JSON.stringify(res.body)}`);
  });
  const submitS = (Date.now() - t0) / 1000;
  // The workspaces show when every command ran (local files: no load on what is measured); a
  // short quiet moment lets the last jobs finish before the CPU is read.
  await waitFor(async () => (await countLines()).flat().length >= jobs, {
    what: "every throughput command",
    timeoutMs: 30 * 60_000,
    intervalMs: 100,
  });
  await sleep(2000);
  const cpu1 = await workerdCpuMs();
  const cpuReadAt = Date.now();
  const statuses = await mapLimit(o.ids, 8, (id) => waitFinal(o.client, id));
  const finishedAt = await mapLimit(o.ids, 8, (id) => reachedAt(o.client, id, "SUCCEEDED"));
  const lastAt = Math.max(...finishedAt.map((x) => x ?? Number.NaN));
  const throughputS = (lastAt - t0) / 1000;
  const perAgentLines = await countLines();
  const lines = perAgentLines.flat();
  const unique = new Set(lines);
  const jobsPerSecond = jobs / throughputS;
  return {
    jobs,
    agents: o.agentDirs.length,
    submitSeconds: round(submitS, 2),
    totalSeconds: round(throughputS, 2),
    jobsPerSecond: round(jobsPerSecond, 1),
    ratioToDirect: round(jobsPerSecond / o.directPerSecond, 3),
    workerdCpuMsPerJob: cpuPerJob(cpu0, cpu1, o.idle, cpuReadAt - t0, jobs),
    cpuWindowCoveredAllJobs: lastAt <= cpuReadAt,
    exactlyOnce: lines.length === jobs && unique.size === jobs,
    linesWritten: lines.length,
    uniqueJobs: unique.size,
    perAgent: perAgentLines.map((l) => l.length),
    statuses: Object.fromEntries([...new Set(statuses)].map((s) => [s, statuses.filter((x) => x === s).length])),
  };
}

export interface LogInput {
  client: ApiClient;
  workerUrl: string;
  apiToken: string;
  /** One job id per kind of output. */
  jobIds: { x: string; text: string };
  bytes: number;
  /** The log agent's workspace: the varied text is written there for the step to `cat`. */
  workspace: string;
  agentPid: number | undefined;
  agentEntry: string;
}

/**
 * Two steps printing `bytes` each, one after the other: x's (`head -c N /dev/zero | tr`), and
 * varied log lines (`cat` of a file of them, written beforehand). For each: MB/s into the stored
 * log and whether it is byte-exact; and the agent's peak RSS over both.
 */
export async function logPart(o: LogInput) {
  const x = await oneLog(o, o.jobIds.x, ["sh", "-c", `head -c ${o.bytes} /dev/zero | tr '\\0' x`], () =>
    Buffer.alloc(o.bytes, "x"),
  );
  const text = logText(o.bytes);
  await writeFile(join(o.workspace, "bench-log.txt"), text);
  const varied = await oneLog(o, o.jobIds.text, ["cat", "bench-log.txt"], () => text);
  const procStatus = await readFile(`/proc/${o.agentPid}/status`, "utf8").catch(() => "");
  const hwm = /VmHWM:\s+(\d+) kB/.exec(procStatus)?.[1];
  return {
    bytes: o.bytes,
    ...x,
    text: varied,
    // Unknown (not 0) when the agent's /proc entry could not be read.
    agentPeakRssMb: hwm === undefined ? Number.NaN : round(Number(hwm) / 1024),
    agentEntry: o.agentEntry,
  };
}

const perMb = (from: number | null, to: number | null, bytes: number) =>
  from === null || to === null ? Number.NaN : round((to - from) / (bytes / 1024 / 1024), 1);

/** One step's output: its MB/s into the stored log, and whether the stored log holds it byte for byte. */
async function oneLog(o: LogInput, jobId: string, argv: string[], expected: () => Buffer) {
  // Sampled, so the CPU up to the end by the ledger's clock is read (not the archive after it).
  const workerd = cpuSampler(await workerdPids());
  const agent = cpuSampler(o.agentPid === undefined ? [] : [o.agentPid]);
  await new Promise((r) => setTimeout(r, 50));
  const t0 = Date.now();
  await o.client.call("/execute", { json: executeSpec(jobId, "bench-log", argv) });
  const status = await waitFinal(o.client, jobId, 30 * 60_000);
  await Promise.all([workerd.stop(), agent.stop()]);
  const t1 = (await reachedAt(o.client, jobId, status)) ?? Date.now();
  const seconds = (t1 - t0) / 1000;
  const cpu0 = { workerd: workerd.at(t0), agent: agent.at(t0) };
  const cpu1 = { workerd: workerd.at(t1), agent: agent.at(t1) };
  const logUrl = `${o.workerUrl}/api/jobs/${jobId}/log`;
  const auth = { headers: { Authorization: `Bearer ${o.apiToken}` } };
  await waitFor(async () => (await fetch(logUrl, auth)).headers.get("X-Skynet-Log") === "archived", {
    what: "the archived log",
    timeoutMs: 120_000,
    intervalMs: 500,
  });
  const stored = Buffer.from(await (await fetch(logUrl, auth)).arrayBuffer());
  // The output starts on its own line, after the attempt header and the command line.
  const want = expected();
  const first = stored.indexOf(Buffer.concat([Buffer.from("\n"), want.subarray(0, 64)])) + 1;
  const body = stored.subarray(first, first + o.bytes);
  const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
  const byteExact = first > 0 && stored.length - first === o.bytes && sha(body) === sha(want);
  return {
    status,
    seconds: round(seconds, 2),
    mbPerSecond: round(o.bytes / 1024 / 1024 / seconds, 1),
    byteExact,
    storedBytes: stored.length,
    // CPU per MB of output on each side of the socket, from the submit to the end (which side
    // is the bottleneck); unknown off Linux.
    cpuMsPerMb: {
      workerd: perMb(cpu0.workerd, cpu1.workerd, o.bytes),
      agent: perMb(cpu0.agent, cpu1.agent, o.bytes),
    },
  };
}
