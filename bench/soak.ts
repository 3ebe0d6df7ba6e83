// `npm run soak`: SKYNET under real faults. wrangler dev plus two real agents (each behind its
// own TCP proxy) serve one project; N jobs (default 1,000) each run one command that appends its
// job id to a trace file outside the workspaces. Meanwhile, at random moments, an agent is
// SIGKILLed and restarted, its network is cut (reset or black-holed) for a while, it is
// SIGSTOPped and SIGCONTed, or the Worker is restarted on the same state. At the end every job's
// final status is compared with the trace:
//   lost        never final (still not final `lostAfterS` after the stuck bound)
//   stuck       not final `settleS` (3 minutes) after the last fault ended
//   duplicated  its trace line appears more than once (the command ran twice)
//   misreported FAILED/CANCELLED with a trace line whose reason claims the step did not run or
//               finish, or SUCCEEDED without a trace line
//   unknown     FAILED saying the outcome is unknown ("outcome unknown: the step may have
//               completed", or "the agent process died while step … ran"): true with or without a
//               trace line, so not misreported; counted apart, with and without a trace
// Figures go to bench/results/soak-<time>.json and a section of BENCHMARKS.md. Nothing here is
// timed; a smaller run is asserted in test/e2e/soak.test.ts.
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type AgentProcess, startAgent } from "../test/helpers/node/agent-process.ts";
import { ApiClient } from "../test/helpers/node/api-client.ts";
import { type GitRepo, makeGitRepo } from "../test/helpers/node/git-repo.ts";
import { type RunningWorker, startWorker } from "../test/helpers/node/wrangler-dev.ts";
import { rng } from "./lib/rng.ts";
import { type CutMode, type FaultProxy, startFaultProxy } from "./soak-faults.ts";

const ROOT = resolve(import.meta.dirname, "..");
type Range = [number, number];

export interface SoakOptions {
  jobs: number;
  /** Submissions per second. */
  ratePerS: number;
  /** Seconds between faults, and each fault's length. */
  faultGapS: Range;
  cutS: Range;
  stopS: Range;
  killDownS: Range;
  workerRestarts: boolean;
  /** A job not final this long after the last fault is stuck… */
  settleS: number;
  /** …and lost if it is still not final this much later. */
  lostAfterS: number;
  /** How long each job's command sleeps before it leaves its trace. */
  stepSleepS: Range;
  /** The Sentinel's cron, run every this many seconds as in production (every minute); null: never. */
  sentinelEveryS: number | null;
  /** Worker vars (grace, lease, heartbeat). */
  vars: Record<string, string>;
  seed: number;
  log: (line: string) => void;
}

export const FULL: Omit<SoakOptions, "log" | "seed"> = {
  jobs: 1000,
  ratePerS: 2.5,
  faultGapS: [5, 20],
  cutS: [2, 90],
  stopS: [2, 45],
  killDownS: [1, 5],
  workerRestarts: true,
  settleS: 180,
  lostAfterS: 120,
  stepSleepS: [0.2, 1.5],
  sentinelEveryS: 60,
  vars: { HEARTBEAT_INTERVAL_SECONDS: "5" },
};

/** The soak in small (test/e2e/soak.test.ts): every kind of fault, in a few minutes. */
export const SMALL: Omit<SoakOptions, "log" | "seed"> = {
  ...FULL,
  jobs: 60,
  ratePerS: 1.5,
  faultGapS: [2, 5],
  cutS: [2, 8],
  stopS: [2, 6],
  killDownS: [0.5, 2],
  // The Sentinel re-offers a job QUEUED over a minute (a dispatch lost in the Worker restart):
  // run it more often than production's minute, and wait long enough for it to act.
  sentinelEveryS: 15,
  settleS: 90,
  lostAfterS: 15,
  stepSleepS: [0.2, 1],
  vars: { HEARTBEAT_INTERVAL_SECONDS: "2", LEASE_SECONDS: "20" },
};

interface JobOutcome {
  jobId: string;
  status: string;
  attempt: number | null;
  agentId: string | null;
  error: string | null;
  traces: number;
  /** The ledger's events, for jobs in a bad category. */
  events?: { to: string | null; event: string; at: string; detail: unknown }[];
  /** The agents' log lines naming it (every process, killed ones too), for jobs in a bad category. */
  agentLog?: string[];
}
interface Fault {
  kind: "kill" | "cut" | "stop" | "worker" | "agent-exited";
  atS: number;
  durationS: number;
  agent?: string;
  mode?: CutMode;
}
export interface SoakResult {
  startedAt: string;
  options: Omit<SoakOptions, "log">;
  durationS: number;
  submitted: number;
  byStatus: Record<string, number>;
  lost: JobOutcome[];
  stuck: JobOutcome[];
  duplicated: JobOutcome[];
  misreported: JobOutcome[];
  /** FAILED saying the outcome is unknown: true either way; split by whether the step ran. */
  unknown: { withTrace: JobOutcome[]; withoutTrace: JobOutcome[] };
  faults: Fault[];
  /** Trace lines that name no submitted job (should be none). */
  strayTraceLines: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const FINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
/** Reasons that say the outcome is not known (the server's, and a restarted agent's). */
const UNKNOWN_REASONS = [
  /^outcome unknown: the step may have completed\b/,
  /\bthe agent process died while step s[0-9]+ ran; the step was killed with it, its effects may be partial\b/,
];
export const saysUnknown = (o: Pick<JobOutcome, "status" | "error">): boolean =>
  o.status === "FAILED" && UNKNOWN_REASONS.some((r) => r.test(o.error ?? ""));
/** A final status the trace contradicts. */
const misreported = (o: JobOutcome): boolean =>
  o.status === "SUCCEEDED" ? o.traces === 0 : FINAL.has(o.status) && o.traces > 0 && !saysUnknown(o);

interface Slot {
  name: string;
  token: string;
  repo: GitRepo;
  proxy: FaultProxy;
  proc: AgentProcess;
  /** Set while the soak itself has killed it (an exit then is expected). */
  killing: boolean;
}

async function mapLimit<T>(items: T[], limit: number, fn: (t: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i] as T, i);
      }
    }),
  );
}

/** Calls the API, retrying while the Worker is away (restarts): network errors, 5xx, 429. */
async function call<T>(client: ApiClient, path: string, json?: unknown): Promise<{ status: number; body: T }> {
  for (let i = 0; ; i++) {
    try {
      const res = await client.call<T>(path, json === undefined ? {} : { json });
      if (res.status < 500 && res.status !== 429) return res;
    } catch {
      // the Worker is restarting, or answered something that is not JSON
    }
    if (i > 600) throw new Error(`${path}: the Worker did not answer for minutes`);
    await sleep(500);
  }
}

export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const started = Date.now();
  const rand = rng(opts.seed);
  const pick = ([lo, hi]: Range) => lo + rand() * (hi - lo);
  const at = () => Math.round((Date.now() - started) / 100) / 10;
  const say = opts.log;
  const traceDir = await mkdtemp(join(tmpdir(), "skynet-soak-"));
  const trace = join(traceDir, "trace.txt");
  await writeFile(trace, "");
  let worker: RunningWorker | undefined;
  let sentinel: NodeJS.Timeout | undefined;
  const slots: Slot[] = [];
  const faults: Fault[] = [];
  try {
    say(`starting wrangler dev (trace file ${trace})`);
    worker = await startWorker({
      vars: { SKYNET_LOG_LEVEL: "warn", TASK_RATE_LIMIT_PER_MINUTE: "1000", ...opts.vars },
      testScheduled: opts.sentinelEveryS !== null,
    });
    const w = worker;
    // wrangler dev runs no cron by itself: the Sentinel is run on its production schedule here.
    if (opts.sentinelEveryS !== null) {
      const every = opts.sentinelEveryS * 1000;
      sentinel = setInterval(() => {
        fetch(`${w.url}/__scheduled?cron=*+*+*+*+*`).then(
          (res) => res.body?.cancel(),
          () => undefined, // the Worker is restarting: the next minute runs it
        );
      }, every);
    }
    const client = new ApiClient(w.url, w.apiToken);
    const processes: { name: string; proc: AgentProcess }[] = [];
    const launch = async (s: Pick<Slot, "name" | "token" | "repo" | "proxy">) => {
      const proc = await startAgent({
        url: s.proxy.url,
        token: s.token,
        workspace: s.repo.dir,
        projectId: "soak",
        name: s.name,
        allowShell: true,
        // Each agent's result journal survives its SIGKILLs (the same directory across restarts).
        env: { SKYNET_AGENT_STATE_DIR: join(traceDir, "agent-state") },
      });
      processes.push({ name: s.name, proc });
      return proc;
    };
    for (const name of ["soak-a", "soak-b"]) {
      const repo = await makeGitRepo({ "README.md": `# ${name}\n` });
      const proxy = await startFaultProxy(w.port);
      const { token } = await client.pair(name);
      const base = { name, token, repo, proxy };
      slots.push({ ...base, proc: await launch(base), killing: false });
    }
    for (let i = 0; i < 600 && (await client.agentsOnline().catch(() => 0)) < 2; i++) await sleep(100);

    // Submissions, paced; the job id is chosen here, so the trace names it.
    const ids = Array.from({ length: opts.jobs }, () => `job_soak${randomBytes(8).toString("hex")}`);
    let submitted = 0;
    let submitting = true;
    const submissions = mapLimit(ids, 8, async (jobId, i) => {
      const due = started + (i / opts.ratePerS) * 1000;
      if (due > Date.now()) await sleep(due - Date.now());
      const secs = pick(opts.stepSleepS).toFixed(1);
      const executionSpec = {
        jobId,
        attempt: 1,
        provider: "openclaw",
        projectId: "soak",
        timeoutS: 600,
        steps: [
          {
            id: "s1",
            action: "run_command",
            params: { argv: ["sh", "-c", `sleep ${secs}; echo ${jobId} >> ${trace}`] },
            risk: "ADMIN",
            timeoutS: 120,
          },
        ],
      };
      // A retried /execute is safe: one job per id (409 when it exists already).
      const res = await call(client, "/execute", { executionSpec });
      if (res.status !== 202 && res.status !== 409) {
        throw new Error(`execute ${jobId}: ${res.status} ${JSON.stringify(res.body)}`);
      }
      submitted += 1;
      if (submitted % 100 === 0) say(`${submitted} submitted (t=${at()}s)`);
    }).finally(() => {
      submitting = false;
    });

    // Faults, one at a time, until every job is submitted; each kind at least once.
    const kinds: Fault["kind"][] = ["kill", "cut", "stop", ...(opts.workerRestarts ? (["worker"] as const) : [])];
    const order = [...kinds].sort(() => rand() - 0.5);
    let lastFaultEnd = Date.now();
    const faultLoop = (async () => {
      while (submitting || order.length > 0) {
        await sleep(pick(opts.faultGapS) * 1000);
        for (const s of slots) {
          if (!s.killing && (s.proc.proc.exitCode !== null || s.proc.proc.signalCode !== null)) {
            say(`agent ${s.name} exited by itself (${s.proc.proc.exitCode ?? s.proc.proc.signalCode}); restarting it`);
            faults.push({ kind: "agent-exited", atS: at(), durationS: 0, agent: s.name });
            s.proc = await launch(s);
          }
        }
        const weighted = ["kill", "kill", "cut", "cut", "cut", "stop", "stop", "worker"] as const;
        const kind = order.shift() ?? weighted[Math.floor(rand() * weighted.length)] ?? "cut";
        if (kind === "worker" && !opts.workerRestarts) continue;
        const slot = slots[Math.floor(rand() * slots.length)] as Slot;
        const begin = Date.now();
        const fault: Fault = { kind, atS: at(), durationS: 0 };
        if (kind === "kill") {
          fault.agent = slot.name;
          slot.killing = true;
          await slot.proc.kill();
          await sleep(pick(opts.killDownS) * 1000);
          slot.proc = await launch(slot);
          slot.killing = false;
        } else if (kind === "cut") {
          fault.agent = slot.name;
          fault.mode = rand() < 0.5 ? "reset" : "blackhole";
          await slot.proxy.cut(pick(opts.cutS) * 1000, fault.mode);
        } else if (kind === "stop") {
          fault.agent = slot.name;
          process.kill(slot.proc.pid, "SIGSTOP");
          await sleep(pick(opts.stopS) * 1000);
          process.kill(slot.proc.pid, "SIGCONT");
        } else if (kind === "worker") {
          await w.restart();
        }
        fault.durationS = Math.round((Date.now() - begin) / 100) / 10;
        faults.push(fault);
        lastFaultEnd = Date.now();
        say(
          `fault ${kind}${fault.agent ? ` ${fault.agent}` : ""}${fault.mode ? ` (${fault.mode})` : ""} for ${fault.durationS}s (t=${fault.atS}s)`,
        );
      }
    })();
    await submissions;
    await faultLoop;
    say(`all ${submitted} submitted and the last fault ended (t=${at()}s); waiting for final statuses`);

    const outcomes = new Map<string, JobOutcome>();
    const pending = new Set(ids);
    const refresh = () =>
      mapLimit([...pending], 6, async (jobId) => {
        const res = await call<{ status: string; attempt: number; agentId: string | null; error: string | null }>(
          client,
          `/api/jobs/${jobId}`,
        );
        const j = res.body;
        const outcome =
          res.status === 200
            ? { jobId, status: j.status, attempt: j.attempt, agentId: j.agentId, error: j.error, traces: 0 }
            : { jobId, status: `HTTP ${res.status}`, attempt: null, agentId: null, error: null, traces: 0 };
        outcomes.set(jobId, outcome);
        if (FINAL.has(outcome.status)) pending.delete(jobId);
      });
    const waitUntil = async (deadline: number) => {
      for (;;) {
        await refresh();
        if (pending.size === 0 || Date.now() > deadline) return;
        say(`${pending.size} job(s) not final yet (t=${at()}s)`);
        await sleep(3000);
      }
    };
    await waitUntil(lastFaultEnd + opts.settleS * 1000);
    const stuck = [...pending];
    if (stuck.length > 0) await waitUntil(Date.now() + opts.lostAfterS * 1000);
    const lost = [...pending];

    await sleep(Math.ceil(opts.stepSleepS[1] * 1000) + 500); // a step still running may yet write
    const counts = new Map<string, number>();
    let stray = 0;
    for (const line of (await readFile(trace, "utf8")).split("\n").filter(Boolean)) {
      if (outcomes.has(line)) counts.set(line, (counts.get(line) ?? 0) + 1);
      else stray += 1;
    }
    for (const o of outcomes.values()) o.traces = counts.get(o.jobId) ?? 0;
    const all = [...outcomes.values()];
    const bad = new Set([...stuck, ...all.filter((o) => o.traces > 1 || misreported(o)).map((o) => o.jobId)]);
    // The ledger of every bad job, and of the unknown ones after them (up to 50 in all).
    const unknownIds = all.filter((o) => saysUnknown(o) && !bad.has(o.jobId)).map((o) => o.jobId);
    await mapLimit([...bad, ...unknownIds].slice(0, 50), 4, async (jobId) => {
      const res = await call<{ events?: JobOutcome["events"] }>(client, `/api/jobs/${jobId}/events`);
      const o = outcomes.get(jobId);
      if (o && res.status === 200) o.events = res.body.events;
      if (o) {
        o.agentLog = processes
          .flatMap((p, i) =>
            p.proc
              .logs()
              .split("\n")
              .map((l) => `${p.name}#${i} ${l}`),
          )
          .filter((l) => l.includes(jobId))
          .slice(0, 40);
      }
    });
    const byStatus: Record<string, number> = {};
    for (const o of all) byStatus[o.status] = (byStatus[o.status] ?? 0) + 1;
    const { log: _log, ...options } = opts;
    return {
      startedAt: new Date(started).toISOString(),
      options,
      durationS: at(),
      submitted,
      byStatus,
      lost: lost.map((id) => outcomes.get(id) as JobOutcome),
      stuck: stuck.map((id) => outcomes.get(id) as JobOutcome),
      duplicated: all.filter((o) => o.traces > 1),
      misreported: all.filter(misreported),
      unknown: {
        withTrace: all.filter((o) => saysUnknown(o) && o.traces > 0),
        withoutTrace: all.filter((o) => saysUnknown(o) && o.traces === 0),
      },
      faults,
      strayTraceLines: stray,
    };
  } finally {
    clearInterval(sentinel);
    for (const s of slots) {
      s.killing = true;
      try {
        process.kill(s.proc.pid, "SIGCONT");
      } catch {
        // already gone
      }
      await s.proc.kill();
      await s.proxy.close();
      await s.repo.cleanup();
    }
    await worker?.stop();
    await rm(traceDir, { recursive: true, force: true });
  }
}

function countKinds(faults: Fault[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of faults) out[f.kind] = (out[f.kind] ?? 0) + 1;
  return out;
}

export function summary(r: SoakResult): string {
  const ids = (list: JobOutcome[]) =>
    list
      .slice(0, 10)
      .map((o) => `${o.jobId} ${o.status}${o.error ? ` "${o.error.slice(0, 120)}"` : ""} traces=${o.traces}`)
      .join("; ");
  const kinds = countKinds(r.faults);
  return [
    `${r.submitted} jobs in ${r.durationS}s; final: ${JSON.stringify(r.byStatus)}`,
    `faults: ${JSON.stringify(kinds)}`,
    `lost ${r.lost.length}${r.lost.length ? `: ${ids(r.lost)}` : ""}`,
    `stuck ${r.stuck.length}${r.stuck.length ? `: ${ids(r.stuck)}` : ""}`,
    `duplicated ${r.duplicated.length}${r.duplicated.length ? `: ${ids(r.duplicated)}` : ""}`,
    `misreported ${r.misreported.length}${r.misreported.length ? `: ${ids(r.misreported)}` : ""}`,
    `unknown (said so) ${r.unknown.withTrace.length + r.unknown.withoutTrace.length}: ${r.unknown.withTrace.length} with a trace, ${r.unknown.withoutTrace.length} without`,
    `stray trace lines ${r.strayTraceLines}`,
  ].join("\n");
}

/** What the bad jobs said, grouped: the reason behind each non-zero figure. */
function causes(r: SoakResult): string {
  const group = (list: JobOutcome[]) => {
    const by = new Map<string, number>();
    for (const o of list) {
      const key = `${o.status}${o.error ? `: ${o.error.replace(/agent_[0-9a-f]+/g, "agent_…").slice(0, 110)}` : ""}`;
      by.set(key, (by.get(key) ?? 0) + 1);
    }
    return [...by].map(([k, n]) => `${n} × ${k}`).join("; ");
  };
  const lines = [
    r.stuck.length ? `- stuck: ${group(r.stuck)}` : "",
    r.duplicated.length ? `- duplicated: ${group(r.duplicated)}` : "",
    r.misreported.length ? `- misreported: ${group(r.misreported)}` : "",
    r.unknown.withTrace.length ? `- unknown, with a trace: ${group(r.unknown.withTrace)}` : "",
    r.unknown.withoutTrace.length ? `- unknown, without a trace: ${group(r.unknown.withoutTrace)}` : "",
  ].filter(Boolean);
  return lines.length ? `\n${lines.join("\n")}\n` : "";
}

export async function writeResults(r: SoakResult): Promise<string> {
  const file = join(ROOT, "bench/results", `soak-${r.startedAt.replaceAll(":", "-")}.json`);
  await writeFile(file, `${JSON.stringify(r, null, 2)}\n`);
  const kinds = countKinds(r.faults);
  const o = r.options;
  const section = `<!-- soak:start -->
## Soak under faults

\`npm run soak\` (bench/soak.ts), latest run ${r.startedAt} (${cpus().length} cores), raw figures in
\`${file.slice(ROOT.length + 1)}\`. ${r.submitted} jobs, each one \`run_command\` that appends its job id
to a trace file, over two agents behind TCP proxies; faults one at a time every ${o.faultGapS[0]}–${o.faultGapS[1]} s:
agent SIGKILL + restart (${kinds.kill ?? 0}), network cut ${o.cutS[0]}–${o.cutS[1]} s by reset or black hole
(${kinds.cut ?? 0}), SIGSTOP ${o.stopS[0]}–${o.stopS[1]} s (${kinds.stop ?? 0}), Worker restart on the same state
(${kinds.worker ?? 0}). Final statuses: ${Object.entries(r.byStatus)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ")}.

| lost (never final) | stuck (not final ${o.settleS} s after the last fault) | duplicated (trace twice) | misreported (FAILED/CANCELLED with a trace for a reason that says the step did not run, SUCCEEDED without a trace) | unknown (said so), with a trace | unknown (said so), without a trace |
|---|---|---|---|---|---|
| ${r.lost.length} | ${r.stuck.length} | ${r.duplicated.length} | ${r.misreported.length} | ${r.unknown.withTrace.length} | ${r.unknown.withoutTrace.length} |

"Unknown (said so)": FAILED with "outcome unknown: the step may have completed" (the server) or
"the agent process died while step … ran; … its effects may be partial" (a restarted agent): what
SKYNET said is true whether or not the step left its trace.
${causes(r)}<!-- soak:end -->`;
  const path = join(ROOT, "BENCHMARKS.md");
  const current = await readFile(path, "utf8").catch(() => "# Benchmarks\n");
  const next = current.includes("<!-- soak:start -->")
    ? current.replace(/<!-- soak:start -->[\s\S]*<!-- soak:end -->/, section)
    : `${current.trimEnd()}\n\n${section}\n`;
  await writeFile(path, next);
  return file;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      jobs: { type: "string", default: String(FULL.jobs) },
      rate: { type: "string", default: String(FULL.ratePerS) },
      seed: { type: "string" },
    },
  });
  const jobs = Number(values.jobs);
  const ratePerS = Number(values.rate);
  if (!Number.isInteger(jobs) || jobs < 1 || !(ratePerS > 0)) throw new Error("--jobs N (≥ 1) and --rate R (> 0)");
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  const result = await runSoak({
    ...FULL,
    jobs,
    ratePerS,
    seed,
    log: (l) => process.stderr.write(`[soak] ${l}\n`),
  });
  console.log(summary(result));
  console.log(`wrote ${await writeResults(result)} and BENCHMARKS.md (seed ${seed})`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
