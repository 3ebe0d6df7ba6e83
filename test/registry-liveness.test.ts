// Liveness of QUEUED jobs in the registry (issue 13, Deliver 1; issue 12, the "nobody can serve
// it" notice): a refused, timed-out or dropped offer backs the agent off for that job instead of
// banning it, the job is offered again when a slot frees, by redispatch and by the Sentinel, and
// a job no connected agent can serve says why, once.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import type { AgentRegistryDO } from "../src/agents/agent-registry-do.ts";
import { offerBackoffMs, rejectIsPermanent } from "../src/agents/matching.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { runScheduled } from "./helpers/handlers.ts";
import { insides } from "./helpers/job-insides.ts";
import { api, JOB_EVENTS, json, pairAgent, TestAgent } from "./helpers/worker.ts";

/** Polls for up to 10 s, and tests get 30 s: the machine running the tests may be busy. */
vi.setConfig({ testTimeout: 30_000 });
const poll = <T>(fn: () => Promise<T>) => expect.poll(fn, { timeout: 10_000 });

const registry = () => env.AGENT_REGISTRY.get(env.AGENT_REGISTRY.idFromName("global"));
const job = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));

async function queuedJob(projectId: string, intent: string, chatId: string | null = null): Promise<string> {
  const jobId = newJobId();
  await job(jobId).create({ jobId, projectId, intent, userId: "42", chatId });
  await runDurableObjectAlarm(job(jobId));
  const view = await job(jobId).get();
  if (view?.status === "PLANNED") await job(jobId).approve({ id: "42", isAdmin: true });
  return jobId;
}

type BookRow = { state: string; agent_id: string | null; backoff: string; banned: string; wake_at: number };

async function bookRow(jobId: string): Promise<BookRow | undefined> {
  return runInDurableObject(
    registry(),
    (_i: AgentRegistryDO, state) =>
      state.storage.sql.exec<BookRow>("SELECT * FROM assignments WHERE job_id = ?", jobId).toArray()[0],
  );
}

/** Pushes an agent's backoff for a job an hour out: only an explicit re-offer can lift it now. */
async function backOffForAnHour(jobId: string): Promise<void> {
  await runInDurableObject(registry(), (reg: AgentRegistryDO, state) => {
    const row = state.storage.sql.exec<BookRow>("SELECT * FROM assignments WHERE job_id = ?", jobId).one();
    const backoff = JSON.parse(row.backoff) as Record<string, { until: number; failures: number }>;
    for (const b of Object.values(backoff)) b.until = Date.now() + 3_600_000;
    reg.book.testAmend(jobId, { backoff: JSON.stringify(backoff), wake_at: Date.now() + 3_600_000 });
  });
}

function offersOf(agent: TestAgent, jobId: string): number {
  return agent.received.filter((m) => m.type === "job_offer" && m.jobId === jobId).length;
}

async function settle(agent: TestAgent): Promise<void> {
  // A frame the registry answers at once: everything sent before it has been handled.
  agent.ws.send("{sync");
  await agent.next("error");
}

describe("offers that fail for a passing reason", () => {
  it("re-offers a job refused at the concurrency limit as soon as the agent's old attempt finishes", async () => {
    const agent = await TestAgent.connect((await pairAgent("busy")).token, {
      workspaces: ["live-limit"],
      maxConcurrency: 1,
    });
    // Attempt 1 runs on the agent, its lease expires (READ_ONLY): attempt 2 is queued while the
    // agent still runs attempt 1 and counts it against its limit.
    const jobId = await queuedJob("live-limit", "check git status");
    await job(jobId).dispatch(1);
    const first = await agent.next("job_offer");
    const fence1 = { jobId, attempt: 1, leaseToken: first.leaseToken };
    agent.send({ type: "job_accept", ...fence1 });
    await poll(async () => (await job(jobId).get())?.status).toBe("RUNNING");
    await runInDurableObject(job(jobId), (i: JobDO) => {
      const s = insides(i).load();
      if (s?.lease) s.lease.expiresAt = Date.now() - 1;
      if (s) insides(i).save(s);
    });
    await runDurableObjectAlarm(job(jobId));
    expect((await job(jobId).get())?.attempt).toBe(2);
    await job(jobId).dispatch(2);
    const second = await agent.next("job_offer");
    expect(second.attempt).toBe(2);
    agent.send({
      type: "job_reject",
      jobId,
      attempt: 2,
      leaseToken: second.leaseToken,
      reason: "agent is at its concurrency limit",
    });
    await settle(agent);
    const row = await bookRow(jobId);
    expect(row?.state).toBe("pending");
    expect(row?.banned).toBe("{}");
    await backOffForAnHour(jobId);
    expect(offersOf(agent, jobId)).toBe(0);
    // Attempt 1 ends on the agent: refused as stale, but its slot is free, so attempt 2 comes back.
    agent.send({
      type: "job_finished",
      ...fence1,
      status: "SUCCEEDED",
      result: { jobId, attempt: 1, status: "SUCCEEDED", steps: [], artifacts: [] },
    });
    expect((await agent.next("error")).code).toBe("stale_lease");
    const again = await agent.next("job_offer");
    // The refused offer's lease was taken back: the new offer carries a new one.
    expect(again).toMatchObject({ jobId, attempt: 2, lease: { agentId: expect.any(String) } });
    expect(again.leaseToken).not.toBe(second.leaseToken);
    agent.send({ type: "job_accept", jobId, attempt: 2, leaseToken: again.leaseToken });
    await poll(async () => (await job(jobId).get())?.status).toBe("RUNNING");
    agent.close();
  });

  it("backs an agent off after an offer times out, then offers it the job again", async () => {
    const agent = await TestAgent.connect((await pairAgent("stopped")).token, { workspaces: ["live-timeout"] });
    const jobId = await queuedJob("live-timeout", "check git status");
    await job(jobId).dispatch(1);
    const offer = await agent.next("job_offer");
    await runInDurableObject(registry(), (reg: AgentRegistryDO) => {
      reg.book.testAmend(jobId, { deadline: 1 });
    });
    await runDurableObjectAlarm(registry());
    const row = await bookRow(jobId);
    expect(row?.state).toBe("pending");
    const backoff = JSON.parse(row?.backoff ?? "{}") as Record<string, { until: number; failures: number }>;
    expect(Object.values(backoff)).toEqual([expect.objectContaining({ failures: 1 })]);
    // The registry's alarm is set for the end of the backoff, and then the same agent gets it again.
    const alarm = await runInDurableObject(registry(), (_i: AgentRegistryDO, state) => state.storage.getAlarm());
    expect(alarm).toBe(row?.wake_at);
    // The timed-out offer's lease was taken back: its token is refused from now on.
    agent.send({ type: "job_accept", jobId, attempt: 1, leaseToken: offer.leaseToken });
    expect(await agent.next("error")).toMatchObject({ code: "stale_lease", jobId, attempt: 1 });
    expect((await job(jobId).get())?.status).toBe("QUEUED");
    const again = await agent.next("job_offer", 15_000);
    expect(again).toMatchObject({ jobId, attempt: 1 });
    expect(again.leaseToken).not.toBe(offer.leaseToken);
    agent.send({ type: "job_accept", jobId, attempt: 1, leaseToken: again.leaseToken });
    await poll(async () => (await job(jobId).get())?.status).toBe("RUNNING");
    agent.close();
  });

  it("re-offers to the same agent after it reconnects when its socket closed with an offer outstanding", async () => {
    const { token } = await pairAgent("flaky");
    const first = await TestAgent.connect(token, { workspaces: ["live-closed"] });
    const jobId = await queuedJob("live-closed", "check git status");
    await job(jobId).dispatch(1);
    const offer = await first.next("job_offer");
    first.close();
    await poll(async () => (await bookRow(jobId))?.state).toBe("pending");
    const second = await TestAgent.connect(token, { workspaces: ["live-closed"] });
    const again = await second.next("job_offer", 15_000);
    expect(again).toMatchObject({ jobId, attempt: 1 });
    expect(again.leaseToken).not.toBe(offer.leaseToken);
    second.send({ type: "job_accept", jobId, attempt: 1, leaseToken: again.leaseToken });
    await poll(async () => (await job(jobId).get())?.status).toBe("RUNNING");
    second.close();
  });

  it("POST /api/jobs/:id/redispatch really offers the job again", async () => {
    const agent = await TestAgent.connect((await pairAgent("nudged")).token, { workspaces: ["live-redispatch"] });
    const jobId = await queuedJob("live-redispatch", "check git status");
    await job(jobId).dispatch(1);
    const offer = await agent.next("job_offer");
    agent.send({ type: "job_reject", jobId, attempt: 1, leaseToken: offer.leaseToken, reason: "busy, try again" });
    await settle(agent);
    await backOffForAnHour(jobId);
    const res = await api(`/api/jobs/${jobId}/redispatch`, { method: "POST" });
    expect(res.status).toBe(202);
    expect(await json(res)).toMatchObject({ jobId, attempt: 1 });
    expect((await agent.next("job_offer")).jobId).toBe(jobId);
    agent.close();
  });

  it("POST /api/jobs/:id/redispatch refuses a job that is not QUEUED, saying why", async () => {
    const jobId = newJobId();
    await job(jobId).create({
      jobId,
      projectId: "live-redispatch",
      intent: "run command xyz123",
      userId: "42",
      chatId: null,
    });
    await runDurableObjectAlarm(job(jobId));
    expect((await job(jobId).get())?.status).toBe("PLANNED");
    const res = await api(`/api/jobs/${jobId}/redispatch`, { method: "POST" });
    expect(res.status).toBe(409);
    expect(await json(res)).toEqual({
      error: { code: "conflict", message: "the job is PLANNED; only a QUEUED job can be offered again" },
    });
  });

  it("the Sentinel offers a QUEUED job waiting over a minute again", async () => {
    const agent = await TestAgent.connect((await pairAgent("forgotten")).token, { workspaces: ["live-sentinel"] });
    const jobId = await queuedJob("live-sentinel", "check git status");
    await job(jobId).dispatch(1);
    const offer = await agent.next("job_offer");
    agent.send({ type: "job_reject", jobId, attempt: 1, leaseToken: offer.leaseToken, reason: "busy, try again" });
    await settle(agent);
    await backOffForAnHour(jobId);
    await runInDurableObject(job(jobId), (i: JobDO) => {
      const s = insides(i).load();
      if (s) s.queuedAt = Date.now() - 61_000;
      if (s) insides(i).save(s);
    });
    await runScheduled();
    expect((await agent.next("job_offer")).jobId).toBe(jobId);
    agent.close();
  });
});

describe("jobs no connected agent can serve", () => {
  it("tells the requester once what is missing, keeps waiting, and runs when a capable agent comes", async () => {
    const chat = "4242013";
    const plain = await TestAgent.connect((await pairAgent("no-shell")).token, { workspaces: ["live-shell"] });
    const jobId = await queuedJob("live-shell", "run command echo hi", chat);
    expect((await job(jobId).get())?.status).toBe("QUEUED");
    await job(jobId).dispatch(1);
    await poll(async () => (await job(jobId).get())?.notice ?? null).toMatch(/--allow-shell/);
    const view = await job(jobId).get();
    expect(view?.status).toBe("QUEUED");
    expect(view?.notice).toBe(
      'no connected agent for project "live-shell" can run shell (an agent started with --allow-shell); waiting for one that can',
    );
    // More pumps (another agent, a redispatch) do not repeat the notice.
    const other = await TestAgent.connect((await pairAgent("elsewhere")).token, { workspaces: ["live-other"] });
    expect((await api(`/api/jobs/${jobId}/redispatch`, { method: "POST" })).status).toBe(202);
    const waiting = async () =>
      (
        await env.DB.prepare(`SELECT detail FROM ${JOB_EVENTS} WHERE job_id = ? AND event = 'waiting'`)
          .bind(jobId)
          .all<{ detail: string }>()
      ).results;
    await poll(async () => (await waiting()).length).toBe(1);
    expect(JSON.parse((await waiting())[0]?.detail ?? "{}")).toMatchObject({ reason: view?.notice });
    // The requester's chat got it through the notify path.
    await poll(async () => {
      const calls = (await (await fetch(`${env.TELEGRAM_API_ROOT}/__calls?chats=${chat}`)).json()) as {
        params: { text?: string };
      }[];
      return calls.some((c) => c.params.text?.includes("--allow-shell"));
    }).toBe(true);
    expect(offersOf(plain, jobId)).toBe(0);
    const shell = await TestAgent.connect((await pairAgent("shell")).token, {
      workspaces: ["live-shell"],
      capabilities: ["git", "fs", "runner", "shell"],
      allowShell: true,
    });
    expect((await shell.next("job_offer")).jobId).toBe(jobId);
    expect(await waiting()).toHaveLength(1);
    for (const a of [plain, other, shell]) a.close();
  });

  it("excludes an agent only for a permanent refusal, and says so", async () => {
    const agent = await TestAgent.connect((await pairAgent("lacking")).token, {
      workspaces: ["live-perm"],
      agentName: "lacking",
    });
    const jobId = await queuedJob("live-perm", "check git status");
    await job(jobId).dispatch(1);
    const offer = await agent.next("job_offer");
    agent.send({
      type: "job_reject",
      jobId,
      attempt: 1,
      leaseToken: offer.leaseToken,
      reason: "this agent does not serve project live-perm",
    });
    await poll(async () => (await job(jobId).get())?.notice ?? null).toMatch(/every connected agent/);
    expect(Object.values(JSON.parse((await bookRow(jobId))?.banned ?? "{}"))).toEqual([
      "this agent does not serve project live-perm",
    ]);
    const events = await env.DB.prepare(`SELECT detail FROM ${JOB_EVENTS} WHERE job_id = ? AND event = 'waiting'`)
      .bind(jobId)
      .all<{ detail: string }>();
    expect(events.results.map((e) => (JSON.parse(e.detail) as { reason: string }).reason)).toEqual([
      "agent lacking cannot run this job: this agent does not serve project live-perm",
      'every connected agent for project "live-perm" refused this job (lacking: this agent does not serve project live-perm); waiting for another',
    ]);
    expect((await job(jobId).get())?.status).toBe("QUEUED");
    agent.close();
  });
});

describe("an accept lost with the connection", () => {
  it("takes the offer's lease back: the resumed attempt is told it is stale and offered again under a new lease", async () => {
    const { token } = await pairAgent("lost-accept");
    const first = await TestAgent.connect(token, { workspaces: ["live-resume"] });
    const jobId = await queuedJob("live-resume", "check git status");
    await job(jobId).dispatch(1);
    const offer = await first.next("job_offer");
    // The agent accepted and started, but the connection dropped before the accept arrived.
    first.close();
    await poll(async () => (await bookRow(jobId))?.state).toBe("pending");
    const second = await TestAgent.connect(token, { workspaces: ["live-resume"] });
    second.send({
      type: "resume",
      running: [{ jobId, attempt: 1, leaseToken: offer.leaseToken, lastSeq: -1 }],
    });
    expect(await second.next("error")).toMatchObject({ code: "stale_lease", jobId, attempt: 1 });
    const again = await second.next("job_offer", 15_000);
    expect(again.leaseToken).not.toBe(offer.leaseToken);
    // The old token moves nothing; the new one does.
    second.send({ type: "job_accept", jobId, attempt: 1, leaseToken: offer.leaseToken });
    expect(await second.next("error")).toMatchObject({ code: "stale_lease", jobId, attempt: 1 });
    expect((await job(jobId).get())?.status).toBe("QUEUED");
    second.send({ type: "job_accept", jobId, attempt: 1, leaseToken: again.leaseToken });
    await poll(async () => (await job(jobId).get())?.status).toBe("RUNNING");
    expect((await bookRow(jobId))?.state).toBe("running");
    expect(second.received.filter((m) => m.type === "job_cancel")).toHaveLength(0);
    second.close();
  });
});

describe("which refusals are permanent", () => {
  it("bans only for what waiting cannot change, and backs off 2 s doubling to a minute", () => {
    for (const reason of [
      "agent is at its concurrency limit",
      "busy, try again",
      "agent is shutting down",
      "something nobody anticipated",
    ])
      expect(rejectIsPermanent(reason), reason).toBe(false);
    for (const reason of [
      "this agent does not serve project web",
      'step s1: unknown action "frobnicate"',
      "step s2: invalid params for write_file: params.path: required",
      "step s1: write_file is WRITE but the step claims READ_ONLY",
      "step s1: run_command is refused: this agent was not started with --allow-shell",
      "offer and spec disagree",
      "unreadable offer: invalid message",
    ])
      expect(rejectIsPermanent(reason), reason).toBe(true);
    expect([1, 2, 3, 4, 5, 6, 7, 20].map(offerBackoffMs)).toEqual([
      2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000,
    ]);
  });
});
