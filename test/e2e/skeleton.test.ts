// The walking skeleton, end to end: curl-style API call → JobDO → rule planner → queue →
// registry → a real agent process → real `git status` in a temporary repository → SUCCEEDED.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobView } from "../../protocol/index.ts";
import { makeGitRepo } from "../helpers/node/git-repo.ts";
import { type Stack, startStack } from "../helpers/node/stack.ts";
import { waitFor } from "../helpers/node/wait.ts";
import type { RunningWorker } from "../helpers/node/wrangler-dev.ts";

let stack: Stack;
let worker: RunningWorker;

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${worker.url}${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${worker.apiToken}`, "Content-Type": "application/json", ...init.headers },
  });
}

beforeAll(async () => {
  const repo = await makeGitRepo({ "README.md": "# demo\n", "src/app.txt": "v1\n" });
  // An untracked and a modified file give `git status` something real to say.
  const { writeFile } = await import("node:fs/promises");
  await writeFile(`${repo.dir}/untracked.txt`, "new\n");
  await writeFile(`${repo.dir}/src/app.txt`, "v2\n");
  stack = await startStack(repo, "e2e");
  worker = stack.worker;
});

afterAll(() => stack?.stop());

describe("walking skeleton", () => {
  it("runs 'check git status' on a real agent and shows the real output", async () => {
    const res = await call("/api/tasks", { method: "POST", body: JSON.stringify({ intent: "check git status" }) });
    expect(res.status).toBe(202);
    const { jobId } = (await res.json()) as { jobId: string };
    let job: JobView | undefined;
    await waitFor(
      async () => {
        job = (await (await call(`/api/jobs/${jobId}`)).json()) as JobView;
        return ["SUCCEEDED", "FAILED", "CANCELLED"].includes(job.status);
      },
      { timeoutMs: 30_000, what: "the job to finish" },
    );
    expect(job?.status).toBe("SUCCEEDED");
    expect(job?.steps).toHaveLength(1);
    expect(job?.steps[0]).toMatchObject({ action: "git_status", state: "succeeded", exitCode: 0 });
    expect(job?.logTail).toContain("untracked.txt");
    expect(job?.logTail).toContain("src/app.txt");
    // The ledger is written from the JobDO's outbox, a moment after the DO's own state.
    await waitFor(
      async () => {
        const list = (await (await call("/api/jobs?status=SUCCEEDED")).json()) as { jobs: { id: string }[] };
        return list.jobs.some((j) => j.id === jobId);
      },
      { timeoutMs: 10_000, what: "the ledger row to say SUCCEEDED" },
    );
    const events = await waitFor(
      async () => {
        const e = (await (await call(`/api/jobs/${jobId}/events`)).json()) as { events: { to: string }[] };
        return e.events.at(-1)?.to === "SUCCEEDED" ? e.events : false;
      },
      { timeoutMs: 10_000, what: "the ledger's SUCCEEDED event" },
    );
    expect(events.map((e) => e.to)).toEqual(["CREATED", "PLANNED", "QUEUED", "RUNNING", "SUCCEEDED"]);
  });

  it("the skynet CLI submits a task and follows it to the end", async () => {
    const { execFile } = await import("node:child_process");
    const { promisify } = await import("node:util");
    const { resolve } = await import("node:path");
    const root = resolve(import.meta.dirname, "../..");
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [resolve(root, "scripts/skynet.ts"), "task", "check git status, show the last 3 commits", "--follow"],
      { cwd: root, env: { ...process.env, SKYNET_URL: worker.url, SKYNET_API_TOKEN: worker.apiToken } },
    );
    expect(stdout).toMatch(/SUCCEEDED/);
    expect(stdout).toContain("git_status");
    expect(stdout).toContain("git_log");
    expect(stdout).toContain("initial");
    const bad = await promisify(execFile)(process.execPath, [resolve(root, "scripts/skynet.ts"), "status", "nope"], {
      cwd: root,
      env: { ...process.env, SKYNET_URL: worker.url, SKYNET_API_TOKEN: worker.apiToken },
    }).catch((err: { code: number; stderr: string }) => err);
    expect("code" in bad && bad.code).toBe(2);
    expect("stderr" in bad && bad.stderr).toMatch(/job id/);
  });

  it("skynet-agent pair saves a private config, status reads it back, a reused code is refused", async () => {
    const { execFile } = await import("node:child_process");
    const { promisify } = await import("node:util");
    const { mkdtemp, readFile, stat, rm } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { join, resolve } = await import("node:path");
    const root = resolve(import.meta.dirname, "../..");
    const dir = await mkdtemp(join(tmpdir(), "skynet-agent-cfg-"));
    const config = join(dir, "agent.json");
    const run = (...args: string[]) =>
      promisify(execFile)(process.execPath, [resolve(root, "agent/src/cli.ts"), ...args], { cwd: root });
    try {
      const { code } = (await (await call("/api/agents/pairing-codes", { method: "POST", body: "{}" })).json()) as {
        code: string;
      };
      const paired = await run("pair", worker.url, code.toLowerCase(), "--name", "cli-test", "--config", config);
      expect(paired.stdout).toMatch(/paired as agent_[0-9a-f]+ \(cli-test\)/);
      const saved = JSON.parse(await readFile(config, "utf8")) as { token: string; serverUrl: string };
      expect(saved.serverUrl).toBe(worker.url);
      expect(saved.token).toMatch(/^skya_/);
      expect((await stat(config)).mode & 0o777).toBe(0o600);
      const status = await run("status", "--config", config);
      // The agent as the server sees it (GET /agent/me): paired, not connected yet.
      expect(status.stdout).toMatch(/^agent:\s+agent_[0-9a-f]+ \(cli-test\)$/m);
      expect(status.stdout).toMatch(/^state:\s+not connected$/m);
      expect(status.stdout).not.toContain(saved.token);
      const again = await run("pair", worker.url, code, "--config", join(dir, "other.json")).catch(
        (err: { code: number; stderr: string }) => err,
      );
      expect("stderr" in again && again.stderr).toMatch(/pairing refused \(401\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("answers bad input with JSON errors and changes nothing", async () => {
    const before = ((await (await call("/api/jobs?limit=100")).json()) as { jobs: unknown[] }).jobs.length;
    const noToken = await fetch(`${worker.url}/api/tasks`, { method: "POST", body: JSON.stringify({ intent: "x" }) });
    expect(noToken.status).toBe(401);
    expect(((await noToken.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    expect((await call("/api/tasks", { method: "POST", body: JSON.stringify({ intent: "" }) })).status).toBe(400);
    expect(
      (await call("/api/tasks", { method: "POST", body: JSON.stringify({ intent: "y".repeat(5000) }) })).status,
    ).toBe(400);
    expect((await call("/api/tasks", { method: "POST", body: "{oops" })).status).toBe(400);
    expect((await call("/api/jobs/job_0000000000aaaaaa")).status).toBe(404);
    const after = ((await (await call("/api/jobs?limit=100")).json()) as { jobs: unknown[] }).jobs.length;
    expect(after).toBe(before);
  });
});
