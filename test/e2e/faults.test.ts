// Fault tests on the real Worker (wrangler dev) with real agent processes: an agent killed
// mid-job, a connection cut while the agent lives, the Worker restarted mid-job, and a dispatch
// message delivered more than once.
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent } from "../helpers/node/agent-process.ts";
import { ApiClient } from "../helpers/node/api-client.ts";
import { type GitRepo, makeGitRepo } from "../helpers/node/git-repo.ts";
import { startTcpProxy, type TcpProxy } from "../helpers/node/tcp-proxy.ts";
import { waitFor } from "../helpers/node/wait.ts";
import { type RunningWorker, startWorker } from "../helpers/node/wrangler-dev.ts";

let worker: RunningWorker;
let client: ApiClient;
const agents: AgentProcess[] = [];
const repos: GitRepo[] = [];
const homes: string[] = [];

/**
 * A repository whose `git status` takes a while: an fsmonitor hook that sleeps, then declines.
 * The agent ignores a repository's own core.fsmonitor (it would run workspace-controlled code),
 * so the hook is named in the agent user's global config (a HOME of its own), which it trusts.
 */
async function slowRepo(seconds: number): Promise<GitRepo & { env: Record<string, string> }> {
  const repo = await makeGitRepo({ "README.md": "# slow\n" });
  repos.push(repo);
  const home = await mkdtemp(join(tmpdir(), "skynet-slow-home-"));
  homes.push(home);
  const hook = join(home, "slow-fsmonitor.sh");
  await writeFile(hook, `#!/bin/sh\nsleep ${seconds}\nexit 1\n`);
  await chmod(hook, 0o755);
  await writeFile(join(home, ".gitconfig"), `[core]\n\tfsmonitor = ${hook}\n`);
  return Object.assign(repo, { env: { HOME: home } });
}

async function repo(files?: Record<string, string>): Promise<GitRepo> {
  const r = await makeGitRepo(files);
  repos.push(r);
  return r;
}

async function agent(
  name: string,
  projectId: string,
  workspace: string,
  opts: { url?: string; allowShell?: boolean; env?: Record<string, string> } = {},
) {
  const { agentId, token } = await client.pair(name);
  const proc = await startAgent({
    url: opts.url ?? worker.url,
    token,
    workspace,
    projectId,
    name,
    allowShell: opts.allowShell,
    env: opts.env,
  });
  agents.push(proc);
  await client.waitOnline(agentId, `agent ${name} to come online\n${proc.logs()}`);
  return { agentId, proc };
}

beforeAll(async () => {
  worker = await startWorker({
    vars: {
      RECONNECT_GRACE_SECONDS: "5",
      LEASE_SECONDS: "20",
      HEARTBEAT_INTERVAL_SECONDS: "2",
      AGENT_UNREACHABLE_SECONDS: "15",
    },
  });
  client = new ApiClient(worker.url, worker.apiToken);
});

afterAll(async () => {
  for (const a of agents) await a.kill();
  await worker?.stop();
  for (const r of repos) await r.cleanup();
  for (const h of homes) await rm(h, { recursive: true, force: true });
});

describe("faults", () => {
  it("an agent killed mid-job: a READ_ONLY job completes on another agent", async () => {
    const slow = await slowRepo(15);
    const a = await agent("doomed", "lost-ro", slow.dir, { env: slow.env });
    const jobId = await client.submit("check git status", "lost-ro");
    const running = await client.waitStatus(jobId, ["RUNNING"]);
    expect(running.agentId).toBe(a.agentId);
    const fast = await repo({ "README.md": "# fast\n" });
    const b = await agent("rescuer", "lost-ro", fast.dir);
    await a.proc.kill();
    const done = await client.waitFinished(jobId, 90_000);
    expect(done.status).toBe("SUCCEEDED");
    expect(done.attempt).toBe(2);
    expect(done.agentId).toBe(b.agentId);
    const { body } = await client.call<{ events: { event: string; detail: { reason?: string } | null }[] }>(
      `/api/jobs/${jobId}/events`,
    );
    expect(body.events.some((e) => e.event === "requeue")).toBe(true);
  });

  it("an agent killed mid-job: a WRITE job that had started is flagged unreachable, then fails as 'outcome unknown'", async () => {
    const project = await repo({
      "package.json": JSON.stringify({ name: "slow-tests", version: "1.0.0", scripts: { test: "sleep 60" } }),
    });
    const a = await agent("doomed-write", "lost-rw", project.dir);
    const jobId = await client.submit("run the tests", "lost-rw");
    await client.waitStatus(jobId, ["PLANNED"]);
    expect((await client.call(`/api/jobs/${jobId}/approve`, { json: {} })).status).toBe(200);
    await waitFor(async () => (await client.job(jobId)).steps[0]?.state === "running", {
      timeoutMs: 30_000,
      what: "the test step to start",
    });
    await a.proc.kill();
    // The server cannot tell whether the step completed: RUNNING and flagged, never re-run...
    const flagged = await waitFor(
      async () => {
        const job = await client.job(jobId);
        return job.agentUnreachableSince ? job : false;
      },
      { timeoutMs: 60_000, what: "the job to be flagged unreachable" },
    );
    expect(flagged.status).toBe("RUNNING");
    // ...until the bound passes, and then it says exactly that.
    const done = await client.waitFinished(jobId, 90_000);
    expect(done.status).toBe("FAILED");
    expect(done.error).toMatch(/^outcome unknown: the step may have completed/);
    expect(done.attempt).toBe(1);
  });

  it("a connection dropped while the agent lives: the agent reconnects and resumes the job", async () => {
    let proxy: TcpProxy | undefined;
    try {
      proxy = await startTcpProxy(worker.port);
      const slow = await slowRepo(5);
      await agent("flaky-network", "resume", slow.dir, { url: proxy.url, env: slow.env });
      const jobId = await client.submit("check git status", "resume");
      await client.waitStatus(jobId, ["RUNNING"]);
      expect(proxy.dropAll()).toBeGreaterThan(0);
      const done = await client.waitFinished(jobId, 90_000);
      expect(done.status).toBe("SUCCEEDED");
      expect(done.attempt).toBe(1);
      expect(done.logTail).toContain("nothing to commit");
    } finally {
      await proxy?.close();
    }
  });

  it("the Worker restarted mid-job with its state kept: no job or event lost", async () => {
    const slow = await slowRepo(8);
    await agent("survivor", "restart", slow.dir, { env: slow.env });
    const jobId = await client.submit("check git status", "restart");
    await client.waitStatus(jobId, ["RUNNING"]);
    await worker.restart();
    const done = await client.waitFinished(jobId, 120_000);
    // The agent kept running the step through the restart and reconnected with its result (the
    // lease outlives the restart): the job succeeds in its first attempt, the step ran once.
    expect(done.status).toBe("SUCCEEDED");
    expect(done.attempt).toBe(1);
    expect(done.steps.map((s) => [s.action, s.state, s.exitCode])).toEqual([["git_status", "succeeded", 0]]);
    const log = (await client.call<{ lines: string[] }>(`/api/jobs/${jobId}/logs?tail=500`)).body.lines;
    expect(log.filter((l) => l.includes("$ git status"))).toHaveLength(1);
    expect(log.join("\n")).toContain("nothing to commit");
    await waitFor(
      async () => {
        const again = await client.call<{ events: { seq: number; to: string }[] }>(`/api/jobs/${jobId}/events`);
        return again.body.events.at(-1)?.to === done.status;
      },
      { timeoutMs: 30_000, what: "the ledger to record the final state" },
    );
    const { body } = await client.call<{ events: { seq: number; to: string }[] }>(`/api/jobs/${jobId}/events`);
    const seqs = body.events.map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(body.events[0]?.to).toBe("CREATED");
  });

  it("a dispatch message delivered three times runs the step once", async () => {
    const workspace = await repo({ "README.md": "# count\n" });
    const jobId = await client.submit(`run command sh -c "echo ran >> count.txt"`, "count");
    await client.waitStatus(jobId, ["PLANNED"]);
    expect((await client.call(`/api/jobs/${jobId}/approve`, { json: {} })).status).toBe(200);
    // No agent serves "count" yet: every delivery of attempt 1 meets the same queued job.
    for (let i = 0; i < 2; i++) {
      expect((await client.call(`/api/jobs/${jobId}/redispatch`, { json: {} })).status).toBe(202);
    }
    await agent("counter", "count", workspace.dir, { allowShell: true });
    const done = await client.waitFinished(jobId, 60_000);
    expect(done.status).toBe("SUCCEEDED");
    expect((await client.call(`/api/jobs/${jobId}/redispatch`, { json: {} })).status).toBe(409);
    expect(await readFile(join(workspace.dir, "count.txt"), "utf8")).toBe("ran\n");
  });
});
