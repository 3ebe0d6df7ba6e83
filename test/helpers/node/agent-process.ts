// Starts a real agent process (`node agent/src/cli.ts connect`, or the published bundle) for
// end-to-end tests and the bench.
import { type ChildProcess, spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { AGENT_ENV, NODE_FLAGS } from "../../../agent/src/service-files.ts";
import { ApiClient } from "./api-client.ts";
import { waitFor } from "./wait.ts";

const ROOT = resolve(import.meta.dirname, "../../..");
/** The heap settings of the agent's own entry points (bin shim, service files, npm run agent). */
export const AGENT_NODE_FLAGS = NODE_FLAGS;

export interface AgentOptions {
  url: string;
  token: string;
  workspace: string;
  projectId?: string;
  name?: string;
  allowShell?: boolean;
  maxConcurrency?: number;
  env?: Record<string, string>;
  /**
   * What runs: the TypeScript sources (type stripping, the default for tests) or the esbuild
   * bundle the package publishes (agent/dist, built by buildAgentBundle), as an installed agent runs.
   */
  entry?: "source" | "bundle";
}

/** The published bundle's path. */
export const AGENT_BUNDLE = join(ROOT, "agent/dist/skynet-agent.js");

/** Builds the agent's bundle as `npm pack` would (agent/package.json `build`); returns its path. */
export async function buildAgentBundle(): Promise<string> {
  const proc = spawn("npm", ["run", "build"], { cwd: join(ROOT, "agent"), stdio: ["ignore", "inherit", "inherit"] });
  const code = await new Promise<number | null>((r) => proc.once("exit", (c) => r(c)));
  if (code !== 0) throw new Error(`building the agent bundle failed (exit ${code})`);
  return AGENT_BUNDLE;
}

export interface AgentProcess {
  proc: ChildProcess;
  pid: number;
  logs(): string;
  /** Graceful stop (SIGTERM), then SIGKILL after 5 s. */
  stop(): Promise<void>;
  /** Hard kill, as if the laptop died. */
  kill(): Promise<void>;
}

export async function startAgent(opts: AgentOptions): Promise<AgentProcess> {
  const args = [
    ...AGENT_NODE_FLAGS,
    opts.entry === "bundle" ? AGENT_BUNDLE : join(ROOT, "agent/src/cli.ts"),
    "connect",
    "--server",
    opts.url,
    "--config",
    join(ROOT, ".skynet", "nonexistent-e2e-config.json"),
    "--workspace",
    `${opts.projectId ?? "default"}=${opts.workspace}`,
    "--name",
    opts.name ?? "e2e-agent",
    "--max-concurrency",
    String(opts.maxConcurrency ?? 2),
    ...(opts.allowShell ? ["--allow-shell"] : []),
  ];
  // The token goes in the environment, never in argv (visible to every user in `ps`).
  const proc = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...AGENT_ENV, SKYNET_AGENT_TOKEN: opts.token, ...opts.env },
    stdio: "pipe",
  });
  let output = "";
  proc.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  proc.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  const signal = async (sig: NodeJS.Signals) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(sig);
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  };
  if (!proc.pid) throw new Error("agent process did not start");
  return { proc, pid: proc.pid, logs: () => output, stop: () => signal("SIGTERM"), kill: () => signal("SIGKILL") };
}

/** Pairs an agent through the real endpoints, starts it, and waits until the Worker counts it online. */
export async function startPairedAgent(
  worker: { url: string; apiToken: string },
  pairName: string,
  opts: Omit<AgentOptions, "url" | "token">,
): Promise<{ client: ApiClient; agent: AgentProcess }> {
  const client = new ApiClient(worker.url, worker.apiToken);
  const { token } = await client.pair(pairName);
  const agent = await startAgent({ ...opts, url: worker.url, token });
  await waitFor(async () => (await client.agentsOnline()) === 1, { what: "the agent", timeoutMs: 30_000 });
  return { client, agent };
}
