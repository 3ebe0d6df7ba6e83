// `npm run bench`: measures SKYNET on `wrangler dev` with real agents on this machine, beside the
// same commands spawned directly in the same run, and writes bench/results/<timestamp>.json and
// the table in BENCHMARKS.md. Not a test: nothing is asserted about time; correctness facts
// (exactly-once, byte-exact, replies in order) are checked and reported. Nothing polls the system
// while it is being measured: jobs are awaited with one long-poll each and timed by the ledger.
import { writeFile } from "node:fs/promises";
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
import { benchJobId } from "./lib/jobs.ts";
import { diffOps, readOps } from "./lib/ops.ts";
import { machineInfo, writeReport } from "./lib/report.ts";
import { p50p99, pct, round, say } from "./lib/stats.ts";
import { meterJobs } from "./ops-part.ts";
import { latencyPart, logPart, throughputPart } from "./parts.ts";

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

/**
 * Waits (at most a minute) until workerd's CPU over one second is back near its idle rate: the
 * previous part's work has drained. Says how long it took, or that it did not settle.
 */
async function settle(idleMsPerS: number | null): Promise<void> {
  const t0 = Date.now();
  const quiet = (idleMsPerS ?? 0) * 1.5 + 20;
  while (Date.now() - t0 < 60_000) {
    const a = await workerdCpuMs();
    await sleep(1000);
    const b = await workerdCpuMs();
    if (a === null || b === null) return;
    if (b - a <= quiet) {
      say(`workerd settled after ${round((Date.now() - t0) / 1000)} s (${round(b - a)} ms CPU in the last second)`);
      return;
    }
  }
  say("workerd did not settle within 60 s; the next part overlaps the previous one's work");
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
    //    Only parts that report CPU or operations need the idle rates.
    const idleMs = METER || LATENCY_RUNS > 0 || THROUGHPUT_JOBS > 0 ? 10_000 : 0;
    const idle0 = METER ? await readOps(worker.url, worker.apiToken, true) : {};
    const cpuIdle0 = await workerdCpuMs();
    await sleep(idleMs);
    const cpuIdle1 = await workerdCpuMs();
    const cpuIdleMsPerS =
      cpuIdle0 === null || cpuIdle1 === null || idleMs === 0 ? null : (cpuIdle1 - cpuIdle0) / (idleMs / 1000);
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
      say(
        `ops per READ_ONLY job: ${ops.billablePerJob} billable, ${ops.issueListPerJob} on the issue's list (all succeeded: ${ops.allSucceeded})`,
      );
      for (const l of ops.lines) say(`  ${l.perJob} × ${l.name}`);
      for (const t of ops.topStorage) say(`  DO ${t.perJob} × ${t.what}`);
      for (const t of ops.topD1) say(`  D1 ${t.perJob} × ${t.what}`);
    }

    // 3-6. Each part only when asked for (a count of 0 skips it: its figures read "not run").
    const direct = p50p99(directLat);
    const lat =
      LATENCY_RUNS > 0 ? await latencyPart(client, LATENCY_RUNS, direct.p50Ms, direct.p99Ms, cpuIdleMsPerS) : null;
    if (lat) say(`submit→SUCCEEDED p50 ${lat.readOnlyJob.p50Ms} ms`);

    const throughput =
      THROUGHPUT_JOBS > 0
        ? await throughputPart({
            client,
            ids: Array.from({ length: THROUGHPUT_JOBS }, () => benchJobId()),
            argv: throughputArgv,
            agentDirs: agentRepos.map((r) => r.dir),
            directPerSecond: directTp.perSecond,
            idle: cpuIdleMsPerS,
          })
        : null;
    if (throughput) say(`throughput: ${throughput.jobsPerSecond} jobs/s (${throughput.ratioToDirect} of direct)`);

    // The throughput part's last effects (ledger writes, archives, alarms) drain for a while
    // after its last job succeeds; a part started before that measures the overlap, not itself.
    if (throughput && (LOG_BYTES > 0 || CHAT_UPDATES > 0)) await settle(cpuIdleMsPerS);

    const logStreaming =
      LOG_BYTES > 0
        ? await logPart({
            client,
            workerUrl: worker.url,
            apiToken: worker.apiToken,
            jobIds: { x: benchJobId(), text: benchJobId() },
            bytes: LOG_BYTES,
            workspace: logRepo.dir,
            agentPid: logAgent.pid,
            agentEntry: AGENT_ENTRY,
          })
        : null;

    const chat =
      CHAT_UPDATES > 0
        ? await runChatLoad({
            webhookUrl: `${worker.url}/telegram/webhook`,
            secret: WEBHOOK_SECRET,
            tg,
            users: CHAT_USERS,
            calibrationUser: CALIBRATION_USER,
            updates: CHAT_UPDATES,
          })
        : null;
    if (chat)
      say(`chat: webhook p50 ${chat.webhook.p50Ms} ms, p99 ${chat.webhook.p99Ms} ms, in order: ${chat.repliesInOrder}`);

    const result = {
      startedAt: startedAt.toISOString(),
      machine: await machineInfo(ROOT),
      note: "shared or quiet machine: only ratios within one run compare across runs; null = part not run",
      agents: AGENTS,
      direct: {
        latencyCommand: LATENCY_ARGV,
        latency: direct,
        throughputCommand: throughputArgv(0),
        loops: 4,
        spawnsPerSecond: round(directTp.perSecond, 1),
      },
      readOnlyJob: lat?.readOnlyJob ?? null,
      pickupQueuedToRunning: lat?.pickupQueuedToRunning ?? null,
      throughput,
      logStreaming,
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
