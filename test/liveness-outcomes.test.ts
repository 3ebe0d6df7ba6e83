// Truthful outcomes (issue 13, Deliver 3 server half and Deliver 7; issue 12, Deliver 5): a WRITE
// job whose agent is unreachable stays RUNNING, flagged, until its result arrives or a bound
// passes ("outcome unknown"); a final job's lease refuses every frame and upload; each attempt's
// output starts with a header line.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import type { ExecutionResult, JobView } from "../protocol/index.ts";
import type { AgentRegistryDO } from "../src/agents/agent-registry-do.ts";
import { renderJob } from "../src/bot/format.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import type { JobState } from "../src/jobs/job-state.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { type Fence, jobFinished } from "./helpers/frames.ts";
import { insides } from "./helpers/job-insides.ts";
import { api, JOB_EVENTS, pairAgent, TestAgent } from "./helpers/worker.ts";

/** Polls for up to 10 s, and tests get 30 s: the machine running the tests may be busy. */
vi.setConfig({ testTimeout: 30_000 });
const poll = <T>(fn: () => Promise<T>) => expect.poll(fn, { timeout: 10_000 });

const job = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));

async function edit(jobId: string, fn: (s: JobState) => void): Promise<void> {
  await runInDurableObject(job(jobId), (i: JobDO) => {
    const s = insides(i).load();
    if (!s) throw new Error("no state");
    fn(s);
    insides(i).save(s);
  });
}

async function view(jobId: string): Promise<JobView> {
  const v = await job(jobId).get();
  if (!v) throw new Error("no job");
  return v;
}

async function events(jobId: string): Promise<string[]> {
  const rows = await env.DB.prepare(`SELECT event, to_status FROM ${JOB_EVENTS} WHERE job_id = ? ORDER BY seq`)
    .bind(jobId)
    .all<{ event: string; to_status: string }>();
  return rows.results.map((r) => `${r.event}:${r.to_status}`);
}

/** A job running on `agent`, approved if it needs it; returns its fence. */
async function running(agent: TestAgent, projectId: string, intent: string) {
  const jobId = newJobId();
  await job(jobId).create({ jobId, projectId, intent, userId: "42", chatId: null });
  await runDurableObjectAlarm(job(jobId));
  if ((await view(jobId)).status === "PLANNED") await job(jobId).approve({ id: "42", isAdmin: false });
  await job(jobId).dispatch(1);
  const offer = await agent.next("job_offer");
  const fence = { jobId, attempt: offer.attempt, leaseToken: offer.leaseToken };
  agent.send({ type: "job_accept", ...fence });
  await poll(async () => (await view(jobId)).status).toBe("RUNNING");
  return fence;
}

/** A newly paired agent named `name` that serves only `projectId`. */
async function pairedAgent(name: string, projectId: string): Promise<TestAgent> {
  return TestAgent.connect((await pairAgent(name)).token, { workspaces: [projectId], agentName: name });
}

/** Runs the job's alarm as if its lease had run out. */
async function expireLease(jobId: string): Promise<void> {
  await edit(jobId, (s) => {
    if (s.lease) s.lease.expiresAt = Date.now() - 1;
  });
  await runDurableObjectAlarm(job(jobId));
}

/** The agent's report that the job's one step, `action`, succeeded. */
const succeeded = (fence: Fence, action = "write_file", more: Pick<ExecutionResult, "artifactsNotStored"> = {}) =>
  jobFinished(fence, { action, more });

describe("a WRITE job whose agent is unreachable", () => {
  it("stays RUNNING, flagged unreachable, and takes its result after the reconnect grace", async () => {
    const { token } = await pairAgent("cut-off");
    const agent = await TestAgent.connect(token, { workspaces: ["unreach"], agentName: "cut-off" });
    const fence = await running(agent, "unreach", "create a new file u.txt with hello");
    agent.send({ type: "step_started", ...fence, stepId: "s1", startedAt: new Date().toISOString() });
    await poll(async () => (await view(fence.jobId)).steps[0]?.state).toBe("running");
    agent.close();
    // The socket is gone: the lease drops to the reconnect grace, which then passes.
    await poll(async () => {
      const s = await runInDurableObject(job(fence.jobId), (i: JobDO) => insides(i).load());
      return (s?.lease?.expiresAt ?? Infinity) <= Date.now() + 31_000;
    }).toBe(true);
    await expireLease(fence.jobId);
    const flagged = await view(fence.jobId);
    expect(flagged.status).toBe("RUNNING");
    expect(flagged.error).toBeNull();
    expect(flagged.agentUnreachableSince).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(flagged.notice).toMatch(
      /^agent agent_[0-9a-f]+ unreachable since .*a WRITE step had started.*waiting for its result until/,
    );
    // More alarms while unreachable change nothing and do not re-dispatch.
    await runDurableObjectAlarm(job(fence.jobId));
    expect((await view(fence.jobId)).attempt).toBe(1);

    const back = await TestAgent.connect(token, { workspaces: ["unreach"], agentName: "cut-off" });
    back.send({ type: "log", ...fence, stepId: "s1", seq: 0, stream: "stdout", data: "wrote u.txt\n" });
    back.send(succeeded(fence));
    await poll(async () => (await view(fence.jobId)).status).toBe("SUCCEEDED");
    const done = await view(fence.jobId);
    expect(done.error).toBeNull();
    expect(done.notice).toBeNull();
    expect(done.logTail).toContain("wrote u.txt");
    expect(await events(fence.jobId)).toEqual([
      "create:CREATED",
      "plan_ready:PLANNED",
      "approve:QUEUED",
      "start:RUNNING",
      "unreachable:RUNNING",
      "reachable:RUNNING",
      "succeed:SUCCEEDED",
    ]);
    back.close();
  });

  it("fails with 'outcome unknown' only after the bound, and refuses the result that comes later", async () => {
    const { token } = await pairAgent("gone-for-good");
    const agent = await TestAgent.connect(token, { workspaces: ["unreach-bound"] });
    const fence = await running(agent, "unreach-bound", "create a new file v.txt with hello");
    agent.send({ type: "step_started", ...fence, stepId: "s1", startedAt: new Date().toISOString() });
    await poll(async () => (await view(fence.jobId)).steps[0]?.state).toBe("running");
    await expireLease(fence.jobId);
    expect((await view(fence.jobId)).status).toBe("RUNNING");
    await edit(fence.jobId, (s) => {
      s.unreachableSince = Date.now() - 601_000; // AGENT_UNREACHABLE_SECONDS defaults to 600
    });
    await runDurableObjectAlarm(job(fence.jobId));
    const failed = await view(fence.jobId);
    expect(failed.status).toBe("FAILED");
    expect(failed.error).toMatch(
      /^outcome unknown: the step may have completed \(agent agent_[0-9a-f]+ unreachable since .*, no result within 600s\)$/,
    );
    // The agent tells us it was cancelled (the fail sends job_cancel), and its late result is refused.
    expect((await agent.next("job_cancel")).attempt).toBe(1);
    agent.send(succeeded(fence));
    expect((await agent.next("error")).code).toBe("lease_ended");
    expect((await view(fence.jobId)).status).toBe("FAILED");
    agent.close();
  });

  it("fails as 'outcome unknown' soon after its agent reconnects without the job, unless the result is replayed", async () => {
    const { token } = await pairAgent("restarted");
    const agent = await TestAgent.connect(token, { workspaces: ["unreach-restart"] });
    const lost = await running(agent, "unreach-restart", "create a new file w.txt with hello");
    const kept = await running(agent, "unreach-restart", "create a new file x.txt with hello");
    for (const fence of [lost, kept]) {
      agent.send({ type: "step_started", ...fence, stepId: "s1", startedAt: new Date().toISOString() });
      await poll(async () => (await view(fence.jobId)).steps[0]?.state).toBe("running");
    }
    agent.close();
    for (const fence of [lost, kept]) await expireLease(fence.jobId);
    expect((await view(lost.jobId)).agentUnreachableSince).toBeTruthy();
    // Back, listing neither job: `kept` finished while cut off and its result is replayed now.
    const back = await TestAgent.connect(token, { workspaces: ["unreach-restart"] });
    back.send({ type: "resume", running: [] });
    back.send(succeeded(kept));
    const withoutJob = async (jobId: string) =>
      runInDurableObject(job(jobId), (i: JobDO) => insides(i).load()?.withoutJobAt ?? null);
    await poll(() => withoutJob(lost.jobId)).toBeTypeOf("number");
    await poll(async () => (await view(kept.jobId)).status).toBe("SUCCEEDED");
    // Still RUNNING until the pause for a replay has passed.
    await runDurableObjectAlarm(job(lost.jobId));
    expect((await view(lost.jobId)).status).toBe("RUNNING");
    await edit(lost.jobId, (s) => {
      s.withoutJobAt = Date.now() - 11_000;
    });
    await runDurableObjectAlarm(job(lost.jobId));
    const failed = await view(lost.jobId);
    expect(failed.status).toBe("FAILED");
    expect(failed.error).toMatch(
      /^outcome unknown: the step may have completed \(agent agent_[0-9a-f]+ reconnected without this job/,
    );
    expect((await view(kept.jobId)).error).toBeNull();
    back.close();
  });

  it("re-dispatches a READ_ONLY job whose agent went silent, as before", async () => {
    const agent = await TestAgent.connect((await pairAgent("ro-silent")).token, { workspaces: ["unreach-ro"] });
    const fence = await running(agent, "unreach-ro", "check git status");
    await expireLease(fence.jobId);
    const requeued = await view(fence.jobId);
    expect(requeued.status).toBe("QUEUED");
    expect(requeued.attempt).toBe(2);
    expect(requeued.agentUnreachableSince).toBeNull();
    agent.close();
  });
});

describe("a final job's lease", () => {
  it("refuses log, step and artifact frames and the artifact upload, and stores nothing", async () => {
    const { token } = await pairAgent("after-the-end");
    const agent = await TestAgent.connect(token, { workspaces: ["ended"] });
    const fence = await running(agent, "ended", "check git status");
    agent.send({ type: "log", ...fence, stepId: "s1", seq: 0, stream: "stdout", data: "before the end\n" });
    agent.send({
      type: "job_finished",
      ...fence,
      status: "SUCCEEDED",
      result: { jobId: fence.jobId, attempt: 1, status: "SUCCEEDED", steps: [], artifacts: [] },
    });
    await poll(async () => (await view(fence.jobId)).status).toBe("SUCCEEDED");
    const before = await view(fence.jobId);
    const logBefore = await job(fence.jobId).readLogs({ tail: 100 });

    agent.send({ type: "log", ...fence, stepId: "s1", seq: 1, stream: "stdout", data: "replayed after the end\n" });
    agent.send({ type: "step_started", ...fence, stepId: "s1", startedAt: new Date().toISOString() });
    agent.send({
      type: "step_finished",
      ...fence,
      stepId: "s1",
      outcome: "failed",
      exitCode: 9,
      durationMs: 1,
    });
    const artifact = { name: "late.txt", size: 4, sha256: "a".repeat(64), contentType: "text/plain" };
    agent.send({ type: "artifact_ready", ...fence, artifact });
    for (let n = 0; n < 4; n++) {
      const err = await agent.next("error");
      expect(err).toMatchObject({ code: "lease_ended", jobId: fence.jobId, attempt: 1 });
      expect(err.message).toMatch(/is SUCCEEDED: its lease has ended/);
    }
    const put = await api(`/agent/jobs/${fence.jobId}/artifacts/late.txt`, {
      method: "PUT",
      token,
      body: "data",
      headers: {
        "Content-Type": "text/plain",
        "Content-Length": "4",
        "X-Skynet-Attempt": "1",
        "X-Skynet-Lease": fence.leaseToken,
        "X-Skynet-Sha256": "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7",
      },
    });
    expect(put.status).toBe(409);
    expect(await put.json()).toEqual({
      error: { code: "conflict", message: `job ${fence.jobId} is final: its lease has ended` },
    });
    expect((await env.ARCHIVE.list({ prefix: `artifacts/jobs/${fence.jobId}/` })).objects).toHaveLength(0);
    const after = await view(fence.jobId);
    expect(after.steps).toEqual(before.steps);
    expect(after.artifacts).toEqual([]);
    expect(after.updatedAt).toBe(before.updatedAt);
    expect(await job(fence.jobId).readLogs({ tail: 100 })).toEqual(logBefore);
    agent.close();
  });
});

describe("the stored log", () => {
  it("starts each attempt's output with a header line", async () => {
    const agent = await pairedAgent("twice", "headers");
    const first = await running(agent, "headers", "check git status");
    agent.send({ type: "log", ...first, stepId: "s1", seq: 0, stream: "stdout", data: "first run\n" });
    await poll(async () => (await view(first.jobId)).logTail).toContain("first run");
    await expireLease(first.jobId);
    await job(first.jobId).dispatch(2);
    const offer = await agent.next("job_offer");
    const second = { jobId: first.jobId, attempt: 2, leaseToken: offer.leaseToken };
    agent.send({ type: "job_accept", ...second });
    agent.send({ type: "log", ...second, stepId: "s1", seq: 0, stream: "stdout", data: "second run\n" });
    await poll(async () => (await view(first.jobId)).logTail).toContain("second run");
    const lines = (await job(first.jobId).readLogs({ tail: 100 }))?.lines ?? [];
    const header = (n: number) =>
      new RegExp(`^── attempt ${n} on agent twice \\(agent_[0-9a-f]+\\) at \\d{4}-\\d\\d-\\d\\dT[0-9:.]+Z ──$`);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(header(1));
    expect(lines[1]).toBe("first run");
    expect(lines[2]).toMatch(header(2));
    expect(lines[3]).toBe("second run");
    agent.close();
  });
});

describe("artifacts the agent could not store", () => {
  it("are listed with their reason in the job view and the chat summary, never silently dropped", async () => {
    const agent = await pairedAgent("uploader", "lost-artifact");
    const fence = await running(agent, "lost-artifact", "check git status");
    const reason = "the server could not be reached for 10 minutes (last: connect ECONNREFUSED)";
    agent.send(succeeded(fence, "git_status", { artifactsNotStored: [{ name: "report.txt", stepId: "s1", reason }] }));
    await poll(async () => (await view(fence.jobId)).status).toBe("SUCCEEDED");
    expect((await view(fence.jobId)).artifactsNotStored).toEqual([{ name: "report.txt", reason }]);
    expect(renderJob(await view(fence.jobId))).toContain(`⚠️ report.txt was not stored: ${reason}`);
    agent.close();
  });
});

describe("a replayed accept of an older attempt", () => {
  it("is refused without dropping the newer attempt the registry offered the same agent", async () => {
    const registry = env.AGENT_REGISTRY.get(env.AGENT_REGISTRY.idFromName("global"));
    const agent = await pairedAgent("replayer", "replay-accept");
    const first = await running(agent, "replay-accept", "check git status");
    await expireLease(first.jobId);
    await job(first.jobId).dispatch(2);
    expect(await agent.next("job_offer")).toMatchObject({ jobId: first.jobId, attempt: 2 });
    // The agent comes back from a half-open link and replays attempt 1's accept first.
    agent.send({ type: "job_accept", ...first });
    expect(await agent.next("error")).toMatchObject({ jobId: first.jobId, attempt: 1 });
    // Attempt 2's offer is still the registry's: unanswered, it times out and is offered again.
    await runInDurableObject(registry, (reg: AgentRegistryDO) => {
      reg.book.testAmend(first.jobId, { deadline: 1 });
    });
    await runDurableObjectAlarm(registry);
    expect(await agent.next("job_offer", 15_000)).toMatchObject({ jobId: first.jobId, attempt: 2 });
    agent.close();
  });
});
