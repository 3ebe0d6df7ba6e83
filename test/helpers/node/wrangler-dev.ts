// Starts the real Worker under `wrangler dev` (workerd, local D1/R2/Queues/DOs on disk) for
// end-to-end tests and benchmarks: migrations applied, secrets passed as --var, ready when
// /health answers. `restart()` keeps the on-disk state (a Worker restart mid-job).
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { WRANGLER, wranglerDev } from "../../../scripts/wrangler.ts";
import { freePort } from "./ports.ts";
import { waitFor } from "./wait.ts";

const ROOT = resolve(import.meta.dirname, "../../..");

export interface WorkerOptions {
  /** Extra or overriding vars (e.g. TELEGRAM_API_ROOT, ANTHROPIC_API_KEY). */
  vars?: Record<string, string>;
  persistDir?: string;
  /** Extra `wrangler dev` arguments (e.g. --test-scheduled). */
  args?: string[];
  /** Start with --test-scheduled: GET /__scheduled runs the cron handler (the Sentinel). */
  testScheduled?: boolean;
}

export interface RunningWorker {
  url: string;
  port: number;
  persistDir: string;
  apiToken: string;
  logs(): string;
  /** The DevTools inspector port of the Worker (for profiling). */
  inspectorPort(): number;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

function env(): NodeJS.ProcessEnv {
  return { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1", NO_COLOR: "1", FORCE_COLOR: "0" };
}

export async function applyMigrations(persistDir: string): Promise<void> {
  await promisify(execFile)(
    process.execPath,
    [WRANGLER, "d1", "migrations", "apply", "DB", "--local", "--persist-to", persistDir],
    { cwd: ROOT, env: env() },
  );
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null || !proc.pid) return;
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  const kill = (signal: NodeJS.Signals) => {
    try {
      process.kill(-(proc.pid as number), signal);
    } catch {
      // already gone
    }
  };
  kill("SIGTERM");
  const timer = setTimeout(() => kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

export async function startWorker(opts: WorkerOptions = {}): Promise<RunningWorker> {
  const persistDir = opts.persistDir ?? (await mkdtemp(join(tmpdir(), "skynet-wrangler-")));
  const ownsDir = !opts.persistDir;
  const apiToken = `e2e-${randomBytes(16).toString("hex")}`;
  const vars: Record<string, string> = {
    API_TOKEN: apiToken,
    TELEGRAM_BOT_TOKEN: "",
    TELEGRAM_WEBHOOK_SECRET: "",
    ANTHROPIC_API_KEY: "",
    SKYNET_LOG_LEVEL: "info",
    ...opts.vars,
  };
  await applyMigrations(persistDir);
  const port = await freePort();
  let output = "";
  let proc: ChildProcess | undefined;
  let inspectorPort = 0;

  const launch = async () => {
    inspectorPort = await freePort();
    const args = [
      ...wranglerDev(port),
      "--inspector-port",
      String(inspectorPort),
      "--persist-to",
      persistDir,
      "--show-interactive-dev-session=false",
      ...(opts.testScheduled ? ["--test-scheduled"] : []),
      "--log-level",
      "log",
      ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
      ...(opts.args ?? []),
    ];
    const child = spawn(process.execPath, args, { cwd: ROOT, env: env(), detached: true, stdio: "pipe" });
    child.stdout?.on("data", (d: Buffer) => {
      output += d.toString();
    });
    child.stderr?.on("data", (d: Buffer) => {
      output += d.toString();
    });
    proc = child;
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`wrangler dev exited:\n${output.slice(-3000)}`);
        const res = await fetch(`http://127.0.0.1:${port}/health`);
        return res.status === 200 || res.status === 503;
      },
      { timeoutMs: 90_000, intervalMs: 250, what: "wrangler dev to answer /health" },
    ).catch((err: unknown) => {
      throw new Error(
        `${err instanceof Error ? err.message : String(err)}\n--- wrangler output ---\n${output.slice(-3000)}`,
      );
    });
  };

  await launch();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    persistDir,
    apiToken,
    logs: () => output,
    inspectorPort: () => inspectorPort,
    async stop() {
      if (proc) await stopProcess(proc);
      if (ownsDir) await rm(persistDir, { recursive: true, force: true });
    },
    async restart() {
      if (proc) await stopProcess(proc);
      await launch();
    },
  };
}
