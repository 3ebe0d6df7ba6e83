// The agent under faults, against a real local registry (fake-registry.ts) with real child
// processes: attempts kept apart, results kept across outages and half-open connections,
// artifact uploads retried across a server that fails or is down, and the reconnect backoff.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ExecutionSpec, ExecutionStep } from "../../protocol/index.ts";
import { type GitRepo, makeGitRepo } from "../../test/helpers/node/git-repo.ts";
import { waitFor } from "../../test/helpers/node/wait.ts";
import { type Agent, type AgentTuning, DEFAULT_TUNING } from "../src/agent.ts";
import { retryDelay } from "../src/backoff.ts";
import { type AgentConfig, DEFAULTS } from "../src/config.ts";
import { FakeRegistry, spec } from "./fake-registry.ts";
import { startTestAgent, testConfig } from "./test-agent.ts";

let server: FakeRegistry;
let repo: GitRepo;
const agents: Agent[] = [];
const lines: string[] = [];

function startAgent(over: Partial<AgentConfig> = {}, tuning: Partial<AgentTuning> = {}): Promise<Agent> {
  const config = testConfig(server.url, repo.dir, { name: "fault-agent", allowShell: true, ...over });
  return startTestAgent(config, { lines, agents }, tuning);
}

const shell = (script: string, id = "s1"): ExecutionStep => ({
  id,
  action: "run_command",
  params: { argv: ["sh", "-c", script] },
  risk: "ADMIN",
  timeoutS: 60,
});
const tests: ExecutionStep = { id: "s1", action: "run_tests", params: {}, risk: "WRITE", timeoutS: 60 };
const nextAttempt = (s: ExecutionSpec, steps: ExecutionStep[]): ExecutionSpec => ({
  ...s,
  attempt: s.attempt + 1,
  steps,
});
const LEASE_2 = "lease-token-attempt-two-0123456789";
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeEach(async () => {
  lines.length = 0;
  server = await new FakeRegistry().start();
  // `make test` is the workspace's test runner: its output is captured as an artifact.
  repo = await makeGitRepo({ "README.md": "# faults\n", Makefile: "test:\n\t@sleep 0.4; echo all-tests-passed\n" });
});

afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop(0);
  await server.close();
  await repo.cleanup();
});

describe("attempts are kept apart", () => {
  it("replayed attempt-1 frames meet stale_lease for attempt 1 while attempt 2 runs on and finishes", async () => {
    await startAgent();
    const one = spec([shell("echo attempt-one")]);
    server.offer(one);
    await server.waitFor("job_finished", (f) => f.jobId === one.jobId && f.attempt === 1);
    // The server moved on to attempt 2 (say attempt 1's result came after its lease).
    server.staleBelow.set(one.jobId, 2);
    const two = nextAttempt(one, [shell("echo two-start; sleep 1.5; echo two-end")]);
    server.offer(two, LEASE_2);
    await server.waitFor("step_started", (f) => f.jobId === two.jobId && f.attempt === 2);
    server.drop();
    await server.waitFor("resume");
    // The reconnect replayed attempt 1's journal and the server refused it, naming attempt 1.
    await waitFor(() => server.staleReplies.some((r) => r.attempt === 1 && r.type === "job_finished"), {
      what: "attempt 1's replayed result to be refused",
    });
    // Late answers about attempt 1, an error naming no attempt and a cancel of attempt 1 change nothing.
    server.send({ type: "error", code: "stale_lease", message: "attempt 1 is over", jobId: one.jobId, attempt: 1 });
    server.send({ type: "error", code: "stale_lease", message: "no attempt named", jobId: one.jobId });
    server.send({ type: "job_cancel", jobId: one.jobId, attempt: 1, reason: "attempt 1 expired" });
    const done = await server.waitFor("job_finished", (f) => f.jobId === two.jobId && f.attempt === 2);
    expect(done.status).toBe("SUCCEEDED");
    expect(done.result.attempt).toBe(2);
    const text = server
      .of("log", two.jobId)
      .filter((f) => f.attempt === 2)
      .map((f) => f.data)
      .join("");
    expect(text).toContain("two-end");
    expect(server.staleReplies.every((r) => r.attempt === 1)).toBe(true);
    expect(lines.join("\n")).toMatch(/stale_lease \(job \S+\): no attempt named/);
  });

  it("an offer of attempt 2 stops attempt 1 still running on this agent", async () => {
    await startAgent();
    const marker = `${40 + Math.random()}`.slice(0, 8);
    const one = spec([shell(`sleep ${marker}`)]);
    server.offer(one);
    await server.waitFor("step_started", (f) => f.jobId === one.jobId);
    const two = nextAttempt(one, [shell("echo second")]);
    server.offer(two, LEASE_2);
    const done = await server.waitFor("job_finished", (f) => f.jobId === two.jobId && f.attempt === 2);
    expect(done.status).toBe("SUCCEEDED");
    const pgrep = async () =>
      (await promisify(execFile)("pgrep", ["-f", `sleep ${marker}`]).catch(() => ({ stdout: "" }))).stdout.trim();
    await waitFor(async () => (await pgrep()) === "", { what: "attempt 1's process to be stopped" });
  });
});

describe("an attempt runs once", () => {
  it("a re-offer of the same attempt under a new lease token gets the run already there, never a second run", async () => {
    await startAgent({}, { lingerMs: 200 });
    const out = await mkdtemp(join(tmpdir(), "skynet-count-"));
    const count = join(out, "count.txt");
    const s = spec([shell(`echo ran >> ${count}; sleep 0.8`)]);
    server.offer(s, "lease-token-first-0123456789");
    await server.waitFor("step_started", (f) => f.jobId === s.jobId);
    // Re-dispatched while it runs (the server's first dispatch call failed after the offer went out).
    server.offer(s, "lease-token-second-0123456789");
    await server.waitFor("job_accept", (f) => f.leaseToken === "lease-token-second-0123456789");
    const done = await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    expect(done).toMatchObject({ status: "SUCCEEDED", leaseToken: "lease-token-second-0123456789" });
    // Re-dispatched again long after it finished and was forgotten (its result was delivered).
    const pings = server.pings;
    await waitFor(() => server.pings >= pings + 3, { what: "keepalives after the result" });
    await pause(500);
    server.offer(s, "lease-token-third-01234567890");
    const again = await server.waitFor("job_finished", (f) => f.leaseToken === "lease-token-third-01234567890");
    expect(again.status).toBe("SUCCEEDED");
    expect(await readFile(count, "utf8")).toBe("ran\n");
    expect(server.of("step_started", s.jobId).map((f) => f.leaseToken)).toContain("lease-token-third-01234567890");
    await rm(out, { recursive: true, force: true });
  });
});

describe("results survive outages", () => {
  const tuning = { lingerMs: 200 };

  it("a job that finished during an outage much longer than the linger is reported on reconnect", async () => {
    await startAgent({}, tuning);
    const s = spec([shell("sleep 0.3; echo done-offline")]);
    server.offer(s);
    await server.waitFor("step_started", (f) => f.jobId === s.jobId);
    await server.down();
    await waitFor(() => lines.some((l) => l.includes(`job ${s.jobId} succeeded`)), { what: "the job to finish" });
    await pause(2500); // more than ten lingers, disconnected
    await server.up();
    const done = await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    expect(done.status).toBe("SUCCEEDED");
    expect(server.logText(s.jobId)).toContain("done-offline");
  });

  it("an accept replayed after an outage says how long ago the attempt was taken", async () => {
    await startAgent({}, tuning);
    const s = spec([shell("sleep 0.2; echo ran")]);
    server.offer(s);
    await server.waitFor("step_started", (f) => f.jobId === s.jobId);
    await server.down();
    const downAt = performance.now();
    await waitFor(() => lines.some((l) => l.includes(`job ${s.jobId} succeeded`)), { what: "the job to finish" });
    await pause(1500);
    await server.up();
    await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    const accepts = server.of("job_accept", s.jobId);
    // The first went with the step's start; the replay came after the outage, and its heldMs
    // covers at least the outage (the attempt was taken before the server went down).
    expect(accepts.length).toBeGreaterThanOrEqual(2);
    const replayed = accepts.at(-1);
    expect(replayed?.heldMs).toBeGreaterThanOrEqual(Math.floor(performance.now() - downAt) - 1_000);
    expect(replayed?.heldMs).toBeGreaterThanOrEqual(1_500);
    expect(replayed?.heldMs).toBeLessThanOrEqual(60_000);
  });

  it("a result sent into a half-open connection is replayed after the agent reconnects", async () => {
    await startAgent({}, tuning);
    const s = spec([shell("sleep 0.5; echo into-the-void")]);
    server.offer(s);
    await server.waitFor("step_started", (f) => f.jobId === s.jobId);
    server.silent = true; // frames now vanish and keepalives go unanswered
    await waitFor(() => lines.some((l) => l.includes(`job ${s.jobId} succeeded`)), { what: "the job to finish" });
    expect(server.of("job_finished", s.jobId)).toHaveLength(0);
    await waitFor(() => lines.some((l) => l.includes("no word from the server")), {
      what: "the agent to notice the silence",
      timeoutMs: 10_000,
    });
    server.silent = false;
    const done = await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    expect(done.status).toBe("SUCCEEDED");
    expect(server.logText(s.jobId)).toContain("into-the-void");
  });

  it("forgets a finished job once a keepalive proved its result arrived (no replay after that)", async () => {
    const agent = await startAgent({}, tuning);
    const s = spec([shell("echo delivered")]);
    server.offer(s);
    await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    const pings = server.pings;
    await waitFor(() => server.pings >= pings + 3, { what: "keepalives after the result" });
    await pause(500);
    const hellos = server.of("hello").length;
    server.drop();
    await waitFor(() => server.of("hello").length > hellos && agent.connected, { what: "the reconnect" });
    await pause(500);
    expect(server.of("job_finished", s.jobId)).toHaveLength(1);
  });
});

describe("artifacts survive blips", () => {
  const uploads = { ...DEFAULT_TUNING.uploads, baseMs: 50, maxMs: 300, retryForMs: 60_000 };
  const stored = (jobId: string) => server.stored.get(`${jobId}/s1-run_tests.log`)?.toString();

  it("retries an upload the server fails, until it is stored", async () => {
    await startAgent({}, { uploads });
    server.uploadFailures = 3;
    const s = spec([tests]);
    server.offer(s);
    const done = await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    expect(done.status).toBe("SUCCEEDED");
    expect(done.result.artifacts.map((a) => a.name)).toEqual(["s1-run_tests.log"]);
    expect(done.result.artifactsNotStored).toBeUndefined();
    expect(stored(s.jobId)).toContain("all-tests-passed");
    expect(server.uploads.map((u) => u.status)).toEqual([503, 503, 503, 201]);
    expect(server.of("artifact_ready", s.jobId)).toHaveLength(1);
  });

  it("keeps the upload while the server is down (port closed), and stores it when it is back", async () => {
    await startAgent({}, { uploads });
    const s = spec([tests]);
    server.offer(s);
    await server.waitFor("step_started", (f) => f.jobId === s.jobId);
    await server.down();
    await waitFor(() => lines.some((l) => /artifact s1-run_tests.log upload failed/.test(l)), {
      what: "a failed upload",
    });
    await pause(1500);
    await server.up();
    const done = await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    expect(done.status).toBe("SUCCEEDED");
    expect(done.result.artifacts.map((a) => a.name)).toEqual(["s1-run_tests.log"]);
    expect(stored(s.jobId)).toContain("all-tests-passed");
    expect((await server.waitFor("artifact_ready", (f) => f.jobId === s.jobId)).artifact.sha256).toMatch(
      /^[0-9a-f]{64}$/,
    );
  });

  it("says which artifact was not stored and why when the server refuses it (lease over)", async () => {
    await startAgent({}, { uploads });
    server.uploadStatus = 403;
    const s = spec([tests]);
    server.offer(s);
    const done = await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    expect(done.status).toBe("SUCCEEDED");
    expect(done.result.artifacts).toEqual([]);
    expect(done.result.artifactsNotStored).toEqual([
      { name: "s1-run_tests.log", stepId: "s1", reason: expect.stringMatching(/lease is over/) },
    ]);
    expect(server.uploads).toHaveLength(1); // a refusal that will not pass is not retried
    expect(server.logText(s.jobId)).toContain("[artifact s1-run_tests.log was not stored: the server refused it");
  });

  it("gives up at the bound and says so", async () => {
    await startAgent({}, { uploads: { ...uploads, retryForMs: 1000 } });
    server.uploadStatus = 503;
    const s = spec([tests]);
    server.offer(s);
    const done = await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    expect(done.result.artifacts).toEqual([]);
    expect(done.result.artifactsNotStored?.[0]?.reason).toMatch(/^upload failed \d+ times over \d+s \(last: 503/);
    expect(server.uploads.length).toBeGreaterThan(1);
  });
});

describe("reconnect backoff", () => {
  it("grows with jitter up to the cap, never above it", () => {
    const { reconnectBaseMs: base, reconnectMaxMs: max } = DEFAULTS;
    expect(retryDelay(0, base, max, () => 0)).toBe(base / 2);
    expect(retryDelay(0, base, max, () => 1)).toBe(base);
    expect(retryDelay(3, base, max, () => 0)).toBe(base * 4);
    for (let n = 0; n < 40; n++) {
      expect(retryDelay(n, base, max, () => 1)).toBeLessThanOrEqual(max);
      expect(retryDelay(n, base, max, () => 0)).toBeGreaterThanOrEqual(Math.min(base * 2 ** n, max) / 2);
    }
    // The defaults the agent ships with: a 2 s blip plus one full delay stays inside a 5 s grace
    // (the e2e tests' RECONNECT_GRACE_SECONDS; the server's default is 30 s).
    expect(2000 + max).toBeLessThan(5000);
  });

  it("after a long outage retries at most a cap apart, and after a healthy connection starts small again", async () => {
    const { reconnectBaseMs, reconnectMaxMs } = DEFAULTS;
    const agent = await startAgent({ reconnectBaseMs: 20, reconnectMaxMs: 200 });
    const delays = () =>
      lines.flatMap((l) => {
        const m = /reconnecting in ([\d.]+)s/.exec(l);
        return m ? [Number(m[1]) * 1000] : [];
      });
    server.refuse = true;
    server.drop();
    await waitFor(() => delays().length >= 10, { what: "ten refused reconnects" });
    // Grew to the cap (with jitter, at least half of it) and stayed at most the cap.
    expect(Math.max(...delays())).toBeLessThanOrEqual(200);
    expect(
      delays()
        .slice(-3)
        .every((d) => d >= 100),
    ).toBe(true);
    server.refuse = false;
    await waitFor(() => agent.connected, { what: "the reconnect" });
    const pings = server.pings;
    await waitFor(() => server.pings > pings + 1, { what: "a keepalive answered" });
    const before = delays().length;
    server.drop();
    await waitFor(() => delays().length > before, { what: "the next reconnect" });
    expect(delays()[before]).toBeLessThanOrEqual(20); // the first step again
    expect(reconnectBaseMs).toBeLessThanOrEqual(500);
    expect(reconnectMaxMs).toBeLessThanOrEqual(5000);
  });
});
