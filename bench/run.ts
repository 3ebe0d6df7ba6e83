// `npm run bench`: measures SKYNET on `wrangler dev` with real agents on this machine, beside the
// same commands spawned directly in the same run, and writes bench/results/<timestamp>.json and
// the table in BENCHMARKS.md. Not a test: nothing is asserted about time; correctness facts
// (exactly-once, byte-exact, replies in order) are checked and reported. Nothing polls the system
// while it is being measured: jobs are awaited with one long-poll each and timed by the ledger.
import { createHash, randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { type AgentProcess, buildAgentBundle, startAgent } from "../test/helpers/node/agent-process.ts";
import { ApiClient } from "../test/helpers/node/api-client.ts";
import { startFakeTelegram } from "../test/helpers/node/fake-telegram.ts";
import { type GitRepo, makeGitRepo } from "../test/helpers/node/git-repo.ts";
import { waitFor } from "../test/helpers/node/wait.ts";
import { startWorker } from "../test/helpers/node/wrangler-dev.ts";
import { runChatLoad } from "./chat-load.ts";
import { workerdCpuMs } from "./lib/cpu.ts";
import { directLatency, directThroughput } from "./lib/direct.ts";
import { reachedAt, waitFinal } from "./lib/jobs.ts";
import { diffOps, readOps } from "./lib/ops.ts";
import { machineInfo, writeReport } from "./lib/report.ts";
import { mapLimit, p50p99, pct, round, say } from "./lib/stats.ts";
import { meterJobs } from "./ops-part.ts";

const ROOT = resolve(import.meta.dirname, "..");
const { values: flags } = parseArgs({
  options: {
    jobs: { type: "string", default: "1000" },
    latency: { type: "string", default: "50" },
    "log-mb": { type: "string", default: "50" },
    agents: { type: "string", default: "4" },
    "ops-jobs": { type: "string", default: "20" },
    "chat-updates": { type: "string", default: "400" },
    /** bundle: the agent as published (agent/dist, built first); source: agent/src via type stripping. */
    "agent-entry": { type: "string", default: "bundle" },
  },
});
const THROUGHPUT_JOBS = Number(flags.jobs);
const LATENCY_RUNS = Number(flags.latency);
const LOG_BYTES = Number(flags["log-mb"]) * 1024 * 1024;
const AGENTS = Number(flags.agents);
const OPS_JOBS = Number(flags["ops-jobs"]);
const CHAT_UPDATES = Number(flags["chat-updates"]);
const AGENT_ENTRY = flags["agent-entry"] === "source" ? "source" : "bundle";
/** --ops-jobs 0 leaves the op meter off (its proxies cost a little CPU on every binding call). */
const METER = OPS_JOBS > 0;
const CHAT_USERS = [101, 102, 103, 104, 105, 106, 107, 108];
const CALIBRATION_USER = 109;
const WEBHOOK_SECRET = "bench-webhook-secret";

/** What a READ_ONLY "check git status" job runs on the agent (agent/src/executor.ts). */
const LATENCY_ARGV = ["git", "status"];
/** What each throughput job runs: the same git status, plus one line naming the job (exactly-once proof). */
const throughputArgv = (i: number) => ["sh", "-c", 'git status >/dev/null && echo "$0" >> ran.txt', `bench-${i}`];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const jobId = () => `job_${Date.now().toString(36)}${randomBytes(6).toString("hex")}`;

function executeSpec(id: string, projectId: string, argv: string[]) {
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

async function main(): Promise<void> {
  const startedAt = new Date();
  // The agents measured are the agent as published unless asked otherwise (--agent-entry source).
  if (AGENT_ENTRY === "bundle") say(`agent bundle built: ${await buildAgentBundle()}`);
  const tg = await startFakeTelegram();
  say(`starting wrangler dev (op meter ${METER ? "on" : "off"})`);
  const worker = await startWorker({
    vars: {
      SKYNET_LOG_LEVEL: "warn",
      TASK_RATE_LIMIT_PER_MINUTE: "1000",
      ...(METER ? { SKYNET_OP_METER: "1" } : {}),
      TELEGRAM_BOT_TOKEN: tg.token,
      TELEGRAM_API_ROOT: tg.url,
      TELEGRAM_WEBHOOK_SECRET: WEBHOOK_SECRET,
      TELEGRAM_ALLOWED_USER_IDS: [...CHAT_USERS, CALIBRATION_USER].join(","),
      TELEGRAM_ADMIN_USER_IDS: [...CHAT_USERS, CALIBRATION_USER].join(","),
    },
  });
  const client = new ApiClient(worker.url, worker.apiToken);
  const repos: GitRepo[] = [];
  const agents: AgentProcess[] = [];
  const repo = async (name: string) => {
    const r = await makeGitRepo({ "README.md": `# ${name}\n` });
    repos.push(r);
    return r;
  };
  try {
    const agentRepos: GitRepo[] = [];
    for (let i = 0; i < AGENTS; i++) {
      const r = await repo(`bench ${i}`);
      agentRepos.push(r);
      const { token } = await client.pair(`bench-${i}`);
      agents.push(
        await startAgent({
          url: worker.url,
          token,
          workspace: r.dir,
          projectId: "bench",
          allowShell: true,
          maxConcurrency: 4,
          name: `bench-${i}`,
          entry: AGENT_ENTRY,
        }),
      );
    }
    const logRepo = await repo("log");
    const logAgent = await startAgent({
      url: worker.url,
      token: (await client.pair("bench-log")).token,
      workspace: logRepo.dir,
      projectId: "bench-log",
      allowShell: true,
      name: "bench-log",
      entry: AGENT_ENTRY,
    });
    agents.push(logAgent);
    await waitFor(async () => (await client.agentsOnline()) === AGENTS + 1, {
      what: "agents online",
      timeoutMs: 60_000,
    });

    // 1. The direct-spawn floor, this run: the latency command alone, and four loops of the
    //    throughput command (in directories of their own, as each agent has its workspace).
    const directDirs = await Promise.all(Array.from({ length: 4 }, (_, i) => repo(`direct ${i}`)));
    const directLat = await directLatency(LATENCY_ARGV, agentRepos[0]?.dir ?? logRepo.dir, Math.max(30, LATENCY_RUNS));
    const directTp = await directThroughput(
      throughputArgv,
      directDirs.map((d) => d.dir),
      Math.max(200, Math.min(THROUGHPUT_JOBS, 1000)),
    );
    say(`direct: git status p50 ${round(pct(directLat, 50))} ms; 4 loops ${round(directTp.perSecond)} spawns/s`);

    // 2. The idle rates (the agents' heartbeats), then billable operations per READ_ONLY job.
    const idleMs = 10_000;
    const idle0 = METER ? await readOps(worker.url, worker.apiToken, true) : {};
    const cpuIdle0 = await workerdCpuMs();
    await sleep(idleMs);
    const cpuIdleMsPerS = cpuIdle0 === null ? null : (((await workerdCpuMs()) ?? 0) - cpuIdle0) / (idleMs / 1000);
    const ops = METER
      ? await meterJobs(
          worker.url,
          worker.apiToken,
          client,
          OPS_JOBS,
          diffOps(await readOps(worker.url, worker.apiToken), idle0),
          idleMs,
        )
      : null;
    if (ops) {
      say(`ops per READ_ONLY job: ${ops.billablePerJob} billable (all succeeded: ${ops.allSucceeded})`);
      for (const l of ops.lines) say(`  ${l.perJob} × ${l.name}`);
      for (const t of ops.topStorage) say(`  DO ${t.perJob} × ${t.what}`);
      for (const t of ops.topD1) say(`  D1 ${t.perJob} × ${t.what}`);
    }

    // 3. READ_ONLY latency: one job at a time; submit → SUCCEEDED by the ledger's clock, read
    //    after the part so the CPU figure holds only the jobs and their waits.
    const cpuLat0 = await workerdCpuMs();
    const tLat0 = Date.now();
    const submitted: { id: string; t: number }[] = [];
    for (let i = 0; i < LATENCY_RUNS; i++) {
      const t = Date.now();
      const id = await client.submit("check git status", "bench");
      const status = await waitFinal(client, id);
      if (status !== "SUCCEEDED") throw new Error(`${id} ended ${status}`);
      submitted.push({ id, t });
    }
    const cpuLat1 = await workerdCpuMs();
    const cpuPerReadOnlyJob =
      cpuLat0 === null || cpuLat1 === null || cpuIdleMsPerS === null
        ? null
        : (cpuLat1 - cpuLat0 - cpuIdleMsPerS * ((Date.now() - tLat0) / 1000)) / LATENCY_RUNS;
    const e2e: number[] = [];
    const pickup: number[] = [];
    for (const { id, t } of submitted) {
      const done = await reachedAt(client, id, "SUCCEEDED");
      const queued = await reachedAt(client, id, "QUEUED");
      const running = await reachedAt(client, id, "RUNNING");
      if (done !== null) e2e.push(done - t);
      if (queued !== null && running !== null) pickup.push(running - queued);
    }
    say(`submit→SUCCEEDED p50 ${round(pct(e2e, 50))} ms`);

    // 4. Throughput with the exactly-once proof and the workerd CPU per job.
    say(`throughput: ${THROUGHPUT_JOBS} jobs over ${AGENTS} agents`);
    const ids = Array.from({ length: THROUGHPUT_JOBS }, () => jobId());
    const countLines = async () =>
      (await Promise.all(agentRepos.map((r) => readFile(join(r.dir, "ran.txt"), "utf8").catch(() => "")))).map((t) =>
        t.split("\n").filter(Boolean),
      );
    const cpu0 = await workerdCpuMs();
    const t0 = Date.now();
    await mapLimit(ids, 32, async (id, i) => {
      const res = await client.call("/execute", { json: executeSpec(id, "bench", throughputArgv(i)) });
      if (res.status !== 202) throw new Error(`execute ${id}: ${res.status} ${JSON.stringify(res.body)}`);
    });
    const submitS = (Date.now() - t0) / 1000;
    // The workspaces show when every command ran (local files: no load on what is measured); a
    // short quiet moment lets the last jobs finish before the CPU is read.
    await waitFor(async () => (await countLines()).flat().length >= THROUGHPUT_JOBS, {
      what: "every throughput command",
      timeoutMs: 30 * 60_000,
      intervalMs: 100,
    });
    await sleep(2000);
    const cpu1 = await workerdCpuMs();
    const cpuReadAt = Date.now();
    const statuses = await mapLimit(ids, 8, (id) => waitFinal(client, id));
    const finishedAt = await mapLimit(ids, 8, (id) => reachedAt(client, id, "SUCCEEDED"));
    const lastAt = Math.max(...finishedAt.map((x) => x ?? Number.NaN));
    const throughputS = (lastAt - t0) / 1000;
    const perAgentLines = await countLines();
    const lines = perAgentLines.flat();
    const unique = new Set(lines);
    const exactlyOnce = lines.length === THROUGHPUT_JOBS && unique.size === THROUGHPUT_JOBS;
    const cpuMsPerJob =
      cpu0 === null || cpu1 === null || cpuIdleMsPerS === null
        ? null
        : (cpu1 - cpu0 - cpuIdleMsPerS * ((cpuReadAt - t0) / 1000)) / THROUGHPUT_JOBS;
    const jobsPerSecond = THROUGHPUT_JOBS / throughputS;
    say(`throughput: ${round(jobsPerSecond)} jobs/s (${round(jobsPerSecond / directTp.perSecond, 3)} of direct)`);

    // 5. Log streaming.
    say(`log streaming: ${LOG_BYTES / 1024 / 1024} MB in one step`);
    const logJob = jobId();
    const tLog = Date.now();
    await client.call("/execute", {
      json: executeSpec(logJob, "bench-log", ["sh", "-c", `head -c ${LOG_BYTES} /dev/zero | tr '\\0' x`]),
    });
    const logStatus = await waitFinal(client, logJob, 30 * 60_000);
    const logSeconds = (((await reachedAt(client, logJob, logStatus)) ?? Date.now()) - tLog) / 1000;
    const procStatus = await readFile(`/proc/${logAgent.pid}/status`, "utf8").catch(() => "");
    const agentPeakRssMb = round(Number(/VmHWM:\s+(\d+) kB/.exec(procStatus)?.[1] ?? "0") / 1024);
    const logUrl = `${worker.url}/api/jobs/${logJob}/log`;
    const auth = { headers: { Authorization: `Bearer ${worker.apiToken}` } };
    await waitFor(async () => (await fetch(logUrl, auth)).headers.get("X-Skynet-Log") === "archived", {
      what: "the archived log",
      timeoutMs: 120_000,
      intervalMs: 500,
    });
    const stored = Buffer.from(await (await fetch(logUrl, auth)).arrayBuffer());
    // The output starts on the first line of x's, after the attempt header and command line.
    const firstX = stored.indexOf("\nx") + 1;
    const body = stored.subarray(firstX, firstX + LOG_BYTES);
    const byteExact =
      stored.length - firstX === LOG_BYTES &&
      createHash("sha256").update(body).digest("hex") ===
        createHash("sha256").update(Buffer.alloc(LOG_BYTES, "x")).digest("hex");

    // 6. Chat load.
    say(`chat load: ${CHAT_UPDATES} updates from ${CHAT_USERS.length} users`);
    const chat = await runChatLoad({
      webhookUrl: `${worker.url}/telegram/webhook`,
      secret: WEBHOOK_SECRET,
      tg,
      users: CHAT_USERS,
      calibrationUser: CALIBRATION_USER,
      updates: CHAT_UPDATES,
    });
    say(`chat: webhook p50 ${chat.webhook.p50Ms} ms, p99 ${chat.webhook.p99Ms} ms, in order: ${chat.repliesInOrder}`);

    const latency = p50p99(e2e);
    const direct = p50p99(directLat);
    const result = {
      startedAt: startedAt.toISOString(),
      machine: await machineInfo(ROOT),
      note: "shared or quiet machine: only ratios within one run compare across runs",
      direct: {
        latencyCommand: LATENCY_ARGV,
        latency: direct,
        throughputCommand: throughputArgv(0),
        loops: 4,
        spawnsPerSecond: round(directTp.perSecond, 1),
      },
      readOnlyJob: {
        runs: LATENCY_RUNS,
        ...latency,
        overheadP50Ms: round(latency.p50Ms - direct.p50Ms),
        overheadP99Ms: round(latency.p99Ms - direct.p99Ms),
        workerdCpuMsPerJob: cpuPerReadOnlyJob === null ? null : round(cpuPerReadOnlyJob, 2),
      },
      pickupQueuedToRunning: p50p99(pickup),
      throughput: {
        jobs: THROUGHPUT_JOBS,
        agents: AGENTS,
        submitSeconds: round(submitS, 2),
        totalSeconds: round(throughputS, 2),
        jobsPerSecond: round(jobsPerSecond, 1),
        ratioToDirect: round(jobsPerSecond / directTp.perSecond, 3),
        workerdCpuMsPerJob: cpuMsPerJob === null ? null : round(cpuMsPerJob, 2),
        cpuWindowCoveredAllJobs: lastAt <= cpuReadAt,
        exactlyOnce,
        linesWritten: lines.length,
        uniqueJobs: unique.size,
        perAgent: perAgentLines.map((l) => l.length),
        statuses: Object.fromEntries([...new Set(statuses)].map((s) => [s, statuses.filter((x) => x === s).length])),
      },
      logStreaming: {
        bytes: LOG_BYTES,
        status: logStatus,
        seconds: round(logSeconds, 2),
        mbPerSecond: round(LOG_BYTES / 1024 / 1024 / logSeconds, 1),
        byteExact,
        storedBytes: stored.length,
        agentPeakRssMb,
        agentEntry: AGENT_ENTRY,
      },
      opsPerReadOnlyJob: ops,
      chatLoad: chat,
    };
    const file = join(ROOT, "bench/results", `${startedAt.toISOString().replaceAll(":", "-")}.json`);
    await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
    await writeReport(ROOT, result);
    say(`wrote ${file} and BENCHMARKS.md`);
  } finally {
    for (const a of agents) await a.kill();
    await worker.stop();
    await tg.close();
    for (const r of repos) await r.cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
