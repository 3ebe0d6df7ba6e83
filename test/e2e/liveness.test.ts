// The two stuck-QUEUED paths of issue 13 on the real Worker (wrangler dev) with real agent
// processes: an agent stopped (SIGSTOP) with an offer outstanding and then continued, and the
// agent's connection cut by a TCP proxy while an offer is outstanding. Before, the registry
// excluded that agent from the job for good and, with one agent per project, the job never ran.
// And the truthful outcome of a WRITE step that completes while its agent is unreachable.
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
const proxies: TcpProxy[] = [];

const ACCEPT_TIMEOUT_S = 4;
const LEASE_S = 10;

async function agent(
  name: string,
  projectId: string,
  url: string,
  files: Record<string, string> = { "README.md": `# ${name}\n` },
): Promise<AgentProcess> {
  const repo = await makeGitRepo(files);
  repos.push(repo);
  const { agentId, token } = await client.pair(name);
  const proc = await startAgent({ url, token, workspace: repo.dir, projectId, name, maxConcurrency: 1 });
  agents.push(proc);
  await client.waitOnline(agentId, `agent ${name} to come online\n${proc.logs()}`);
  return proc;
}

/** Submits a READ_ONLY job and waits until it is QUEUED and its offer has surely gone out. */
async function queuedWithOfferOut(projectId: string): Promise<string> {
  const jobId = await client.submit("check git status", projectId);
  await client.waitStatus(jobId, ["QUEUED"]);
  // The dispatch message goes through the local queue, then the registry sends the offer.
  await new Promise((r) => setTimeout(r, 2_000));
  const job = await client.job(jobId);
  expect(job.status).toBe("QUEUED");
  return jobId;
}

async function expectRanOnce(jobId: string): Promise<void> {
  const done = await client.waitFinished(jobId, 90_000);
  expect(done.status, JSON.stringify(done)).toBe("SUCCEEDED");
  expect(done.attempt).toBe(1);
  expect(done.logTail).toMatch(/── attempt 1 on agent .* ──/);
  const { body } = await client.call<{ events: { event: string }[] }>(`/api/jobs/${jobId}/events`);
  expect(body.events.filter((e) => e.event === "start")).toHaveLength(1);
}

beforeAll(async () => {
  worker = await startWorker({
    vars: {
      ACCEPT_TIMEOUT_SECONDS: String(ACCEPT_TIMEOUT_S),
      HEARTBEAT_INTERVAL_SECONDS: "2",
      RECONNECT_GRACE_SECONDS: "10",
      LEASE_SECONDS: String(LEASE_S),
    },
  });
  client = new ApiClient(worker.url, worker.apiToken);
});

afterAll(async () => {
  for (const a of agents) {
    if (a.proc.exitCode === null && a.proc.signalCode === null) process.kill(a.pid, "SIGCONT");
    await a.kill();
  }
  for (const p of proxies) await p.close();
  await worker?.stop();
  for (const r of repos) await r.cleanup();
});

describe("jobs never stay QUEUED for a passing fault", () => {
  it("an agent stopped with an offer outstanding, then continued: the job runs once and finishes", async () => {
    const a = await agent("sleepy", "live-stop", worker.url);
    process.kill(a.pid, "SIGSTOP");
    let continued = false;
    try {
      const jobId = await queuedWithOfferOut("live-stop");
      // Stopped well past the accept timeout: the offer times out at least once.
      await new Promise((r) => setTimeout(r, ACCEPT_TIMEOUT_S * 1000 * 2 + 2_000));
      expect((await client.job(jobId)).status).toBe("QUEUED");
      process.kill(a.pid, "SIGCONT");
      continued = true;
      await expectRanOnce(jobId);
    } finally {
      if (!continued) process.kill(a.pid, "SIGCONT");
    }
  });

  it("the agent's connection cut while an offer is outstanding: the job runs once and finishes", async () => {
    const proxy = await startTcpProxy(worker.port);
    proxies.push(proxy);
    const a = await agent("cut-off", "live-cut", proxy.url);
    // Stopped so it cannot accept: the offer is outstanding when the connection is cut.
    process.kill(a.pid, "SIGSTOP");
    let continued = false;
    try {
      const jobId = await queuedWithOfferOut("live-cut");
      expect(proxy.dropAll()).toBeGreaterThan(0);
      process.kill(a.pid, "SIGCONT");
      continued = true;
      await expectRanOnce(jobId);
      expect(a.logs()).toMatch(/connected to .*[\s\S]*connected to /);
    } finally {
      if (!continued) process.kill(a.pid, "SIGCONT");
    }
  });
});

describe("a WRITE job whose agent is unreachable", () => {
  it("a WRITE step that completes while its agent is unreachable: flagged, never failed, then SUCCEEDED", async () => {
    const a = await agent("frozen-writer", "live-write", worker.url, {
      "package.json": JSON.stringify({ name: "w", version: "1.0.0", scripts: { test: "sleep 4 && echo tests-done" } }),
    });
    const jobId = await client.submit("run the tests", "live-write");
    await client.waitStatus(jobId, ["PLANNED"]);
    expect((await client.call(`/api/jobs/${jobId}/approve`, { json: {} })).status).toBe(200);
    await waitFor(async () => (await client.job(jobId)).steps[0]?.state === "running", {
      timeoutMs: 30_000,
      what: "the WRITE step to start",
    });
    // The agent freezes (its step keeps running and finishes) until well past its lease.
    process.kill(a.pid, "SIGSTOP");
    let continued = false;
    try {
      const flagged = await waitFor(
        async () => {
          const job = await client.job(jobId);
          return job.agentUnreachableSince ? job : false;
        },
        { timeoutMs: LEASE_S * 1000 * 3, what: "the job to be flagged unreachable" },
      );
      expect(flagged.status).toBe("RUNNING");
      expect(flagged.notice).toMatch(/unreachable since .* waiting for its result/);
      process.kill(a.pid, "SIGCONT");
      continued = true;
      const done = await client.waitFinished(jobId, 60_000);
      expect(done.status, JSON.stringify(done)).toBe("SUCCEEDED");
      expect(done.error).toBeNull();
      expect(done.logTail).toContain("tests-done");
      const { body } = await client.call<{ events: { event: string }[] }>(`/api/jobs/${jobId}/events`);
      expect(body.events.map((e) => e.event)).toEqual(
        expect.arrayContaining(["start", "unreachable", "reachable", "succeed"]),
      );
      expect(body.events.some((e) => e.event === "fail" || e.event === "requeue")).toBe(false);
    } finally {
      if (!continued) process.kill(a.pid, "SIGCONT");
    }
  });
});
