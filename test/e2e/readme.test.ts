// The README's examples, verbatim: `npm run dev`'s script (on a free port, its state in a
// temporary directory) serves the sample project it creates, and every fenced `sh` block of the
// "Submit a task" section runs as written (only the port in URLs differs) and exits 0, with the
// tasks ending as the README says.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JobListResponseSchema, JobViewSchema } from "../../protocol/index.ts";
import { ensureSampleProject } from "../../scripts/sample-project.ts";
import { freePort } from "../helpers/node/ports.ts";
import { waitFor } from "../helpers/node/wait.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const README = readFileSync(join(ROOT, "README.md"), "utf8");

function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`README has no "## ${title}" section`);
  const end = README.indexOf("\n## ", start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}
const shBlocks = (text: string): string[] => [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");

let dev: ChildProcess;
let output = "";
let stateDir: string;
let base = "";

function runBlock(block: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn("bash", ["-e", "-o", "pipefail", "-c", block], {
      cwd: ROOT,
      env: { ...process.env, SKYNET_URL: base, SKYNET_API_TOKEN: "", SKYNET_CONFIG: join(stateDir, "no-cli.json") },
      stdio: "pipe",
    });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 110_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

async function api(path: string): Promise<unknown> {
  const token = /^API_TOKEN=(.*)$/m.exec(readFileSync(join(ROOT, ".dev.vars"), "utf8"))?.[1]?.trim() ?? "";
  const res = await fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  return res.json();
}

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), "skynet-readme-"));
  const port = await freePort();
  // What `npm run dev` runs, on its own port and state; the bridge stays off whatever .dev.vars says.
  dev = spawn(
    process.execPath,
    [join(ROOT, "scripts/dev.ts"), "--port", String(port), "--state-dir", stateDir, "--no-telegram"],
    {
      cwd: ROOT,
      env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
      detached: true,
      stdio: "pipe",
    },
  );
  dev.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  dev.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  await waitFor(
    () => {
      if (dev.exitCode !== null) throw new Error(`npm run dev exited:\n${output.slice(-3000)}`);
      const m = /\[skynet\] ready: (http:\/\/127\.0\.0\.1:\d+) /.exec(output);
      if (m?.[1]) base = m[1];
      return Boolean(m);
    },
    { timeoutMs: 110_000, intervalMs: 250, what: "npm run dev to say it is ready" },
  );
  expect(base).toBe(`http://127.0.0.1:${port}`);
});

afterAll(async () => {
  if (dev?.pid && dev.exitCode === null) {
    const exited = new Promise<void>((r) => dev.once("exit", () => r()));
    process.kill(-dev.pid, "SIGTERM");
    const timer = setTimeout(() => dev.pid && process.kill(-dev.pid, "SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

describe("README", () => {
  it("keeps the two setup commands, one per line in the first code block", () => {
    const first = shBlocks(README)[0] ?? "";
    const commands = first
      .split("\n")
      .map((l) => l.split("#")[0]?.trim())
      .filter(Boolean);
    expect(commands).toEqual(["npm ci && npm run dev", "npm ci && npm test"]);
  });

  it("npm run dev serves a sample project it created (a git repository outside version control)", () => {
    const sample = join(stateDir, "sample-project");
    expect(output).toContain(`created a sample project to try tasks on: ${sample}`);
    expect(output).toContain(`agent serving project "default": ${sample}`);
    expect(existsSync(join(sample, ".git"))).toBe(true);
    // The default place, .skynet/sample-project, is ignored by this repository's git.
    expect(() =>
      execFileSync("git", ["check-ignore", "-q", ".skynet/sample-project/package.json"], { cwd: ROOT }),
    ).not.toThrow();
  });

  it("every example of 'Submit a task' runs verbatim and the tasks succeed", async () => {
    const blocks = shBlocks(section("Submit a task"));
    expect(blocks.length).toBeGreaterThanOrEqual(2);
    const before = JobListResponseSchema.parse(await api("/api/jobs?limit=100")).jobs.length;
    for (const block of blocks) {
      const text = block.replaceAll("http://127.0.0.1:8787", base);
      const res = await runBlock(text);
      expect({ block, code: res.code, stderr: res.stderr }).toMatchObject({ block, code: 0 });
      expect(res.stdout).not.toContain("skynet:");
    }
    const jobs = JobListResponseSchema.parse(await api("/api/jobs?limit=100")).jobs;
    expect(jobs.length - before).toBeGreaterThanOrEqual(3);
    for (const j of jobs.slice(0, jobs.length - before))
      expect({ intent: j.intent, status: j.status }).toEqual({ intent: j.intent, status: "SUCCEEDED" });
    const headline = jobs.find((j) => j.intent === "check git status, run tests and build");
    expect(headline).toBeDefined();
    const job = JobViewSchema.parse(await api(`/api/jobs/${headline?.id}`));
    expect(job.steps.map((s) => [s.action, s.state])).toEqual([
      ["git_status", "succeeded"],
      ["run_tests", "succeeded"],
      ["build_project", "succeeded"],
    ]);
    expect(existsSync(join(stateDir, "sample-project/dist/greet.js"))).toBe(true);
  });

  it("the sample project is left alone when present and made again when missing", async () => {
    const sample = join(stateDir, "sample-project");
    writeFileSync(join(sample, "mine.txt"), "keep me\n");
    expect(ensureSampleProject(sample)).toBe(false);
    expect(readFileSync(join(sample, "mine.txt"), "utf8")).toBe("keep me\n");
    const other = join(stateDir, "again");
    expect(ensureSampleProject(other)).toBe(true);
    expect(execFileSync("git", ["log", "--oneline"], { cwd: other }).toString()).toContain("sample project");
    execFileSync("npm", ["test"], { cwd: other, stdio: "ignore" });
  });
});
