// A job longer than its lease on a healthy agent (issue 20): the step outlives LEASE_SECONDS
// several times over while the agent keeps heartbeating, so the lease is renewed and the job is
// neither re-dispatched nor failed: it ends SUCCEEDED at attempt 1 with the step run once.
import { execFile } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent } from "../helpers/node/agent-process.ts";
import { ApiClient } from "../helpers/node/api-client.ts";
import { type GitRepo, makeGitRepo } from "../helpers/node/git-repo.ts";
import { waitFor } from "../helpers/node/wait.ts";
import { type RunningWorker, startWorker } from "../helpers/node/wrangler-dev.ts";

const LEASE_S = 4;
const STEP_S = 16; // four leases

let worker: RunningWorker;
let client: ApiClient;
let agent: AgentProcess | undefined;
let repo: GitRepo | undefined;
let home: string | undefined;

beforeAll(async () => {
  worker = await startWorker({ vars: { LEASE_SECONDS: String(LEASE_S), HEARTBEAT_INTERVAL_SECONDS: "1" } });
  client = new ApiClient(worker.url, worker.apiToken);
});

afterAll(async () => {
  await agent?.kill();
  await worker?.stop();
  await repo?.cleanup();
  if (home) await rm(home, { recursive: true, force: true });
});

describe("a job longer than its lease", () => {
  it("keeps its lease through heartbeats and succeeds at attempt 1, its step run once", async () => {
    repo = await makeGitRepo({ "README.md": "# long\n" });
    home = await mkdtemp(join(tmpdir(), "skynet-long-home-"));
    // `git status` asks the fsmonitor hook (named in the agent user's global config, which the
    // agent trusts) and waits for it: each call is logged, so a second run of the step shows.
    const runs = join(home, "fsmonitor-runs.log");
    const hook = join(home, "slow-fsmonitor.sh");
    await writeFile(hook, `#!/bin/sh\necho run >> "${runs}"\nsleep "\${SLOW_HOOK_SECONDS:-${STEP_S}}"\nexit 1\n`);
    await chmod(hook, 0o755);
    await writeFile(join(home, ".gitconfig"), `[core]\n\tfsmonitor = ${hook}\n`);
    // How many hook calls one `git status` makes here (git may ask more than once).
    await promisify(execFile)("git", ["status"], {
      cwd: repo.dir,
      env: { ...process.env, HOME: home, SLOW_HOOK_SECONDS: "0" },
    });
    const perRun = (await readFile(runs, "utf8")).split("\n").filter(Boolean).length;
    expect(perRun).toBeGreaterThan(0);
    await rm(runs);

    const { agentId, token } = await client.pair("long-runner");
    agent = await startAgent({
      url: worker.url,
      token,
      workspace: repo.dir,
      projectId: "long",
      name: "long-runner",
      env: { HOME: home },
    });
    await waitFor(async () => (await client.agentsOnline()) === 1, {
      timeoutMs: 30_000,
      what: `the agent to come online\n${agent.logs()}`,
    });

    const jobId = await client.submit("check git status", "long");
    const running = await client.waitStatus(jobId, ["RUNNING"]);
    expect(running.agentId).toBe(agentId);
    await waitFor(async () => (await readFile(runs, "utf8").catch(() => "")).length > 0, {
      timeoutMs: 30_000,
      what: "the step to start",
    });
    const started = Date.now();
    // Three leases into the step: still the first attempt, still running, nothing re-offered.
    await waitFor(async () => Date.now() - started > 3 * LEASE_S * 1000, {
      timeoutMs: 3 * LEASE_S * 1000 + 10_000,
      what: "three leases to pass",
    });
    const midway = await client.job(jobId);
    expect(midway.status).toBe("RUNNING");
    expect(midway.attempt).toBe(1);
    expect(midway.steps[0]?.state).toBe("running");

    const done = await client.waitFinished(jobId, 90_000);
    expect(done.status, `${done.error}\n${agent.logs()}`).toBe("SUCCEEDED");
    expect(done.attempt).toBe(1);
    expect(done.agentId).toBe(agentId);
    expect(done.error).toBeNull();
    expect(done.steps.map((s) => s.state)).toEqual(["succeeded"]);
    const { body } = await client.call<{ events: { event: string; to: string }[] }>(`/api/jobs/${jobId}/events`);
    expect(body.events.map((e) => `${e.event}:${e.to}`)).toEqual([
      "create:CREATED",
      "plan_ready:PLANNED",
      "approve:QUEUED",
      "start:RUNNING",
      "succeed:SUCCEEDED",
    ]);
    const hookCalls = (await readFile(runs, "utf8")).split("\n").filter(Boolean).length;
    expect(hookCalls).toBe(perRun);
  });
});
