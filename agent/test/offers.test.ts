// The agent's answers to offers it must turn down (offers.ts), against the fake registry: each
// reject names a reason the server can act on, and nothing is accepted or run for it. A draining
// agent says so again on every new connection, so a registry that lost it meanwhile offers nothing.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ExecutionSpec, ExecutionStep } from "../../protocol/index.ts";
import { type GitRepo, makeGitRepo } from "../../test/helpers/node/git-repo.ts";
import type { Agent } from "../src/agent.ts";
import type { AgentConfig } from "../src/config.ts";
import { FakeRegistry, spec } from "./fake-registry.ts";
import { startTestAgent, testConfig } from "./test-agent.ts";

let server: FakeRegistry;
let repo: GitRepo;
const agents: Agent[] = [];
const lines: string[] = [];

function startAgent(over: Partial<AgentConfig> = {}): Promise<Agent> {
  return startTestAgent(testConfig(server.url, repo.dir, { allowShell: true, ...over }), { lines, agents });
}

const shell = (script: string): ExecutionStep => ({
  id: "s1",
  action: "run_command",
  params: { argv: ["sh", "-c", script] },
  risk: "ADMIN",
  timeoutS: 60,
});

async function rejected(s: ExecutionSpec): Promise<string> {
  const reject = await server.waitFor("job_reject", (f) => f.jobId === s.jobId && f.attempt === s.attempt);
  expect(server.of("job_accept", s.jobId).filter((f) => f.attempt === s.attempt)).toHaveLength(0);
  return reject.reason;
}

beforeEach(async () => {
  lines.length = 0;
  server = await new FakeRegistry().start();
  repo = await makeGitRepo({ "README.md": "# offers\n" });
});

afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop(0);
  await server.close();
  await repo.cleanup();
});

describe("offers turned down", () => {
  it("at its concurrency limit a new job is rejected; a newer attempt of a running job is not", async () => {
    await startAgent({ maxConcurrency: 1 });
    const running = spec([shell("sleep 30")]);
    server.offer(running);
    await server.waitFor("step_started", (f) => f.jobId === running.jobId);
    const other = spec([shell("echo other")]);
    server.offer(other);
    expect(await rejected(other)).toBe("agent is at its concurrency limit");
    // Attempt 2 replaces attempt 1 (which stops): it takes that slot rather than being refused.
    const next = { ...running, attempt: 2, steps: [shell("echo next")] };
    server.offer(next, "lease-token-attempt-two-0123456789");
    const done = await server.waitFor("job_finished", (f) => f.jobId === next.jobId && f.attempt === 2);
    expect(done.status).toBe("SUCCEEDED");
    expect(server.of("job_reject", running.jobId)).toHaveLength(0);
  });

  it("an offer whose spec names another attempt, or a project this agent does not serve", async () => {
    await startAgent();
    const s = spec([shell("echo never > ran.txt")]);
    const fence = { jobId: s.jobId, attempt: 1, leaseToken: "lease-token-0123456789abcdef" };
    const lease = { agentId: "agent_test", expiresAt: Date.now() + 60_000 };
    server.send({ type: "job_offer", ...fence, lease, spec: { ...s, attempt: 2 } });
    expect(await rejected(s)).toBe("offer and spec disagree");
    const elsewhere = spec([shell("echo never > ran.txt")], "other-project");
    server.offer(elsewhere);
    expect(await rejected(elsewhere)).toBe("this agent does not serve project other-project");
    expect(server.of("step_started")).toHaveLength(0);
  });

  it("a draining agent tells the server, again after a reconnect, and turns every new offer down", async () => {
    const agent = await startAgent();
    expect(await agent.drain(0)).toBe(true);
    await server.waitFor("draining");
    const s = spec([shell("echo never")]);
    server.offer(s);
    expect(await rejected(s)).toBe("agent is stopping");
    const hellos = server.of("hello").length;
    server.drop();
    await server.waitFor("hello", () => server.of("hello").length > hellos);
    await server.waitFor("draining", () => server.of("draining").length >= 2);
    const later = spec([shell("echo never")]);
    server.offer(later);
    expect(await rejected(later)).toBe("agent is stopping");
  });
});
