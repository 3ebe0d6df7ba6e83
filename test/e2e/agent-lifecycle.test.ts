// A real agent process stopping on its own terms: the first SIGTERM drains (the server offers it
// nothing more, the running step finishes, exit 0), a second one cancels the running job, and a
// server speaking another protocol version (close 4003) stops it for good with exit code 5.
import type { ChildProcess } from "node:child_process";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AgentSelfSchema } from "../../protocol/index.ts";
import { type AgentProcess, startAgent } from "../helpers/node/agent-process.ts";
import { ApiClient } from "../helpers/node/api-client.ts";
import { type GitRepo, makeGitRepo } from "../helpers/node/git-repo.ts";
import { waitFor } from "../helpers/node/wait.ts";
import { type RunningWorker, startWorker } from "../helpers/node/wrangler-dev.ts";

let worker: RunningWorker;
let client: ApiClient;
const repos: GitRepo[] = [];
const agents: AgentProcess[] = [];

beforeAll(async () => {
  worker = await startWorker();
  client = new ApiClient(worker.url, worker.apiToken);
});

afterEach(async () => {
  for (const a of agents.splice(0)) await a.kill();
});

afterAll(async () => {
  await worker?.stop();
  for (const r of repos) await r.cleanup();
});

/** A project whose tests take `seconds` (a real `sleep` through npm). */
async function slowProject(seconds: number): Promise<GitRepo> {
  const repo = await makeGitRepo({
    "package.json": JSON.stringify({ name: "slow", version: "1.0.0", scripts: { test: `sleep ${seconds}` } }),
  });
  repos.push(repo);
  return repo;
}

function exitOf(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((r) => proc.once("exit", (code) => r(code)));
}

async function self(token: string) {
  const res = await fetch(`${worker.url}/agent/me`, { headers: { Authorization: `Bearer ${token}` } });
  return AgentSelfSchema.parse(await res.json());
}

/** Submits "run the tests" (WRITE), approves it and waits for its step to run. */
async function runningTests(projectId: string): Promise<string> {
  const jobId = await client.submit("run the tests", projectId);
  await client.waitStatus(jobId, ["PLANNED"]);
  expect((await client.call(`/api/jobs/${jobId}/approve`, { json: {} })).status).toBe(200);
  await waitFor(async () => (await client.job(jobId)).steps[0]?.state === "running", {
    timeoutMs: 30_000,
    what: "the test step to start",
  });
  return jobId;
}

describe("agent lifecycle", () => {
  it("first SIGTERM: no new offers, the running step finishes, the job succeeds, exit 0", async () => {
    const project = await slowProject(6);
    const { token } = await client.pair("drainer");
    const agent = await startAgent({ url: worker.url, token, workspace: project.dir, projectId: "drain" });
    agents.push(agent);
    const jobId = await runningTests("drain");
    const exited = exitOf(agent.proc);
    agent.proc.kill("SIGTERM");
    // The server hears it: the agent is draining (and so is offered nothing).
    await waitFor(async () => (await self(token)).draining, { timeoutMs: 10_000, what: "the server to see the drain" });
    expect(agent.logs()).toMatch(/SIGTERM: taking no new jobs; waiting up to 300s for 1 running job/);
    // A job the agent could run, submitted while it drains: it must not be offered to it.
    const later = await client.submit("check git status", "drain");
    const done = await client.waitFinished(jobId, 60_000);
    expect(done.status).toBe("SUCCEEDED");
    expect(done.steps[0]).toMatchObject({ state: "succeeded", exitCode: 0 });
    expect(await exited).toBe(0);
    expect(agent.logs()).not.toContain(later);
    expect((await client.job(later)).status).toBe("QUEUED");
    expect((await client.job(later)).agentId ?? null).toBeNull();
    await client.call(`/api/jobs/${later}/cancel`, { json: {} });
  });

  it("a second SIGTERM cancels the running job and still exits 0", async () => {
    const project = await slowProject(120);
    const { token } = await client.pair("impatient");
    const agent = await startAgent({ url: worker.url, token, workspace: project.dir, projectId: "cancel" });
    agents.push(agent);
    const jobId = await runningTests("cancel");
    const exited = exitOf(agent.proc);
    agent.proc.kill("SIGTERM");
    await waitFor(async () => (await self(token)).draining, { timeoutMs: 10_000, what: "the server to see the drain" });
    agent.proc.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(agent.logs()).toMatch(/SIGTERM again: cancelling running jobs/);
    const done = await client.waitFinished(jobId, 60_000);
    // Reported by the agent itself before it left (not "agent lost" when its lease ran out).
    expect(done.status).toBe("CANCELLED");
    expect(done.steps[0]?.state).toBe("cancelled");
  });

  it("a protocol version the server does not speak (close 4003) stops the agent with exit 5", async () => {
    const project = await slowProject(1);
    const { token } = await client.pair("outdated");
    const agent = await startAgent({
      url: worker.url,
      token,
      workspace: project.dir,
      env: { SKYNET_AGENT_TEST_PROTOCOL_VERSION: "999" },
    });
    agents.push(agent);
    const code = await Promise.race([
      exitOf(agent.proc),
      new Promise<"still running">((r) => setTimeout(() => r("still running"), 30_000)),
    ]);
    expect(code).toBe(5);
    expect(agent.logs()).toMatch(/ERROR the server speaks another protocol version .*upgrade the agent/);
    expect(agent.logs()).not.toMatch(/reconnecting in/);
    expect((await self(token)).connected).toBe(false);
  });
});
