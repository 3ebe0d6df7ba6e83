// The agent as a new user gets it: `npm pack` the agent workspace, `npm install` the tarball into
// an empty folder outside the repository, and run that installed `skynet-agent` (on the machine's
// Node 20 when there is one) to pair, connect and run a READ_ONLY job against wrangler dev; then
// `status` (this agent as the server sees it) and `doctor` (OK, and FAIL with the fix).
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiClient } from "../helpers/node/api-client.ts";
import { type GitRepo, makeGitRepo } from "../helpers/node/git-repo.ts";
import { waitFor } from "../helpers/node/wait.ts";
import { type RunningWorker, startWorker } from "../helpers/node/wrangler-dev.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const exec = promisify(execFile);
type Result = { code: number; stdout: string; stderr: string };

let worker: RunningWorker;
let client: ApiClient;
let repo: GitRepo;
let tmp: string;
let prefix: string;
let home: string;
let config: string;
/** The node that runs the installed agent: the machine's own (older) one when there is one. */
let agentNode = process.execPath;
let agentProc: ChildProcess | undefined;
let agentLog = "";

const entry = () => join(prefix, "node_modules/skynet-agent/bin/skynet-agent.js");
const env = () => ({ ...process.env, HOME: home, SKYNET_AGENT_CONFIG: config });

async function installed(...args: string[]): Promise<Result> {
  return exec(agentNode, [entry(), ...args], { cwd: prefix, env: env() }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: Result) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

/** A node on PATH other than the test's own, if its major version differs (the system's Node 20). */
async function systemNode(): Promise<string | null> {
  const { stdout } = await exec("sh", ["-c", "which -a node || true"]);
  for (const candidate of stdout.split("\n").filter(Boolean)) {
    const real = await realpath(candidate).catch(() => candidate);
    if (real === (await realpath(process.execPath))) continue;
    const v = await exec(candidate, ["--version"]).catch(() => null);
    if (v && v.stdout.trim().split(".")[0] !== process.version.split(".")[0]) return candidate;
  }
  return null;
}

beforeAll(async () => {
  tmp = await realpath(await mkdtemp(join(tmpdir(), "skynet-agent-pkg-")));
  prefix = join(tmp, "laptop");
  home = join(tmp, "home");
  config = join(home, ".config/skynet/agent.json");
  await exec("mkdir", ["-p", prefix, home]);
  repo = await makeGitRepo({ "README.md": "# laptop project\n" });
  await writeFile(join(repo.dir, "untracked.txt"), "new\n");
  worker = await startWorker();
  client = new ApiClient(worker.url, worker.apiToken);
});

afterAll(async () => {
  if (agentProc && agentProc.exitCode === null && agentProc.signalCode === null) agentProc.kill("SIGKILL");
  await worker?.stop();
  await repo?.cleanup();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("the packed skynet-agent package", () => {
  it("packs only the bundle, its shim and package.json, and installs with its dependencies", async () => {
    const packed = await exec("npm", ["pack", "-w", "agent", "--pack-destination", tmp, "--json"], {
      cwd: ROOT,
      maxBuffer: 16 * 1024 * 1024,
    });
    const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    expect(info?.files.map((f) => f.path).sort()).toEqual([
      "bin/skynet-agent.js",
      "dist/skynet-agent.js",
      "package.json",
    ]);
    const tarball = join(tmp, info?.filename ?? "");
    // An empty folder outside the repository; the dependencies come from npm's cache.
    await writeFile(join(prefix, "package.json"), JSON.stringify({ name: "laptop", private: true }));
    await exec("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", tarball], {
      cwd: prefix,
      env: { ...process.env, npm_config_workspaces: "false" },
    });
    // ws and zod, and the Claude Agent SDK for code_task (with the peers npm installs for it).
    const top = (await readdir(join(prefix, "node_modules"))).filter((n) => !n.startsWith("."));
    expect(top).toEqual(expect.arrayContaining(["@anthropic-ai", "skynet-agent", "ws", "zod"]));
    expect(await readdir(join(prefix, "node_modules/@anthropic-ai"))).toContain("claude-agent-sdk");
    const manifest = JSON.parse(await readFile(join(prefix, "node_modules/skynet-agent/package.json"), "utf8")) as {
      version: string;
      engines: { node: string };
      bin: Record<string, string>;
    };
    expect(manifest.bin).toEqual({ "skynet-agent": "bin/skynet-agent.js" });
    // What the agent tells the server (hello's agentVersion) is the package's version.
    const { stdout: version } = await exec(process.execPath, [
      join(prefix, "node_modules/skynet-agent/bin/skynet-agent.js"),
      "--version",
    ]);
    expect(version.trim()).toBe(manifest.version);
    const other = await systemNode();
    if (other) agentNode = other;
    console.log(`the installed agent runs on ${agentNode} (${(await exec(agentNode, ["--version"])).stdout.trim()})`);
  });

  it("pairs through its bin on PATH and saves the token privately", async () => {
    const { body } = await client.call<{ code: string }>("/api/agents/pairing-codes", { json: { name: "laptop" } });
    // The bin itself, as `npx skynet-agent` would run it (its shebang finds node on PATH).
    const res = await exec(
      join(prefix, "node_modules/.bin/skynet-agent"),
      ["pair", worker.url, body.code, "--name", "laptop"],
      {
        cwd: prefix,
        env: env(),
      },
    );
    expect(res.stdout).toMatch(/paired as agent_[0-9a-f]+ \(laptop\); token saved to /);
    expect(JSON.parse(await readFile(config, "utf8"))).toMatchObject({ serverUrl: worker.url, name: "laptop" });
  });

  it("connects and runs a READ_ONLY job; status shows it connected as the server sees it", async () => {
    agentProc = spawn(agentNode, [entry(), "connect", "--workspace", `default=${repo.dir}`, "--log-format", "json"], {
      cwd: prefix,
      env: env(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    agentProc.stdout?.on("data", (d: Buffer) => {
      agentLog += d.toString();
    });
    agentProc.stderr?.on("data", (d: Buffer) => {
      agentLog += d.toString();
    });
    await waitFor(async () => (await client.agentsOnline()) === 1, { timeoutMs: 30_000, what: "the agent online" });
    const jobId = await client.submit("check git status");
    const job = await client.waitFinished(jobId);
    expect(job.status).toBe("SUCCEEDED");
    expect(job.logTail).toContain("untracked.txt");
    const status = await installed("status");
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^state: {3}connected$/m);
    expect(status.stdout).toMatch(/^last heartbeat: \d{4}-\d\d-\d\dT/m);
    // Every line the agent logged is one JSON object with a time and a level.
    const lines = agentLog.trim().split("\n");
    expect(lines.length).toBeGreaterThan(2);
    for (const line of lines) {
      expect(JSON.parse(line)).toMatchObject({ time: expect.stringMatching(/^\d{4}-.*Z$/), level: expect.any(String) });
    }
    expect(agentLog).toContain(`job ${jobId} accepted`);
    const token = (JSON.parse(await readFile(config, "utf8")) as { token: string }).token;
    expect(agentLog).not.toContain(token);
  });

  it("doctor passes here, and fails with the fix for a missing workspace and a refused token", async () => {
    const ok = await installed("doctor", "--workspace", `default=${repo.dir}`);
    expect(ok.stdout).toMatch(/^OK {3}git: git version /m);
    expect(ok.stdout).toMatch(/^OK {3}server: /m);
    expect(ok.stdout).toMatch(/^OK {3}token: accepted: agent agent_/m);
    expect(ok.stdout).toMatch(/^OK {3}clock: /m);
    expect(ok.stdout).toMatch(/^OK {3}workspace default: .*git repository/m);
    expect(ok.stdout).toMatch(/^(OK {3}|WARN )containment: /m);
    expect(ok.code).toBe(0);

    const missing = await installed("doctor", "--workspace", `web=${join(tmp, "nowhere")}`);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toMatch(/^FAIL workspace web: .*nowhere is not a directory\n {5}fix: /m);

    // The same server with a token it never issued.
    const forged = join(home, "forged.json");
    await writeFile(forged, JSON.stringify({ serverUrl: worker.url, token: `skya_${"0".repeat(40)}` }), {
      mode: 0o600,
    });
    const refused = await installed("doctor", "--config", forged);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/^FAIL token: refused by the server .*\n {5}fix: .*skynet-agent pair/m);
  });

  it("stops on SIGTERM with exit code 0", async () => {
    const proc = agentProc as ChildProcess;
    expect(proc.exitCode).toBeNull();
    const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
    proc.kill("SIGTERM");
    expect(await exited).toBe(0);
    // The server answered the close: what the agent sent last has arrived.
    expect(agentLog).toMatch(/"msg":"stopped"/);
    expect(agentLog).not.toMatch(/did not answer the close/);
    const status = await installed("status");
    expect(status.stdout).toMatch(/^state: {3}not connected$/m);
  });
});
