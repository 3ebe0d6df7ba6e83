// Issue 17: the offer carries the attempt's token, with no call to the JobDO between the hand-over
// and the offer. Through the real AgentRegistryDO and JobDO: the token the JobDO minted when it
// queued the attempt (and handed over with it) is the one offered; the first accept under it takes the lease (QUEUED →
// RUNNING) and any other agent presenting it is refused; once an offer ends the JobDO mints a new
// token before anyone else is offered the attempt, so the old one is refused everywhere.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import type { AgentRegistryDO } from "../src/agents/agent-registry-do.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import { insides } from "./helpers/job-insides.ts";
import { offered, queuedJob } from "./helpers/offers.ts";
import { pairAgent, TestAgent } from "./helpers/worker.ts";

vi.setConfig({ testTimeout: 30_000 });
const poll = <T>(fn: () => Promise<T>) => expect.poll(fn, { timeout: 10_000 });
const registry = () => env.AGENT_REGISTRY.get(env.AGENT_REGISTRY.idFromName("global"));
const job = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));
const stored = (jobId: string) => runInDurableObject(job(jobId), (i: JobDO) => insides(i).load());
const bookToken = (jobId: string) =>
  runInDurableObject(
    registry(),
    (_i: AgentRegistryDO, state) =>
      state.storage.sql
        .exec<{ lease_token: string }>("SELECT lease_token FROM assignments WHERE job_id = ?", jobId)
        .toArray()[0]?.lease_token ?? null,
  );

function finished(jobId: string, leaseToken: string) {
  return {
    type: "job_finished" as const,
    jobId,
    attempt: 1,
    leaseToken,
    status: "SUCCEEDED" as const,
    result: {
      jobId,
      attempt: 1,
      status: "SUCCEEDED" as const,
      steps: [{ stepId: "s1", action: "git_status", outcome: "succeeded" as const, exitCode: 0 }],
      artifacts: [],
    },
  };
}

describe("an offer that carries the lease", () => {
  it("reaches the agent with no JobDO call between the hand-over and the offer; the accept takes the lease", async () => {
    const { agentId, token } = await pairAgent("leased");
    const agent = await TestAgent.connect(token, { workspaces: ["offer-lease"] });
    const jobId = await queuedJob("offer-lease");
    const before = await job(jobId).opCounts();
    await job(jobId).dispatch(1);
    const offer = await agent.next("job_offer");
    expect(offer.lease.agentId).toBe(agentId);
    // The only call the JobDO took is the dispatch that handed the attempt over: no lease grant.
    const after = await job(jobId).opCounts();
    const calls = Object.entries(after)
      .filter(([k, n]) => k.startsWith("rpc.") && n !== (before[k] ?? 0))
      .map(([k, n]) => [k, n - (before[k] ?? 0)]);
    expect(calls).toEqual([["rpc.dispatch", 1]]);
    // The token offered is the one stored when the attempt was queued, and no agent holds the lease yet.
    const queued = await stored(jobId);
    expect(queued?.status).toBe("QUEUED");
    expect(queued?.leaseToken).toBe(offer.leaseToken);
    expect(queued?.lease).toBeNull();
    expect(await bookToken(jobId)).toBe(offer.leaseToken);
    const fence = { jobId, attempt: 1, leaseToken: offer.leaseToken };
    agent.send({
      type: "batch",
      frames: [
        { type: "job_accept", ...fence },
        { type: "step_started", ...fence, stepId: "s1", startedAt: new Date().toISOString() },
        { type: "log", ...fence, stepId: "s1", seq: 0, stream: "stdout", data: "## main\n" },
        { type: "step_finished", ...fence, stepId: "s1", outcome: "succeeded", exitCode: 0, durationMs: 2 },
        finished(jobId, offer.leaseToken),
      ],
    });
    await poll(async () => (await job(jobId).get())?.status).toBe("SUCCEEDED");
    expect((await job(jobId).get())?.agentId).toBe(agentId);
    expect(agent.received.filter((m) => m.type === "error")).toEqual([]);
    agent.close();
  });

  it("refuses a second agent presenting the same token, before or after the holder's accept", async () => {
    const { agent, agentId, jobId, offer } = await offered("first", "offer-twice");
    const other = await TestAgent.connect((await pairAgent("second")).token, { workspaces: ["offer-twice"] });
    const fence = { jobId, attempt: 1, leaseToken: offer.leaseToken };
    // Before the holder: the registry refuses it (the attempt was not offered to this agent)...
    other.send({ type: "job_accept", ...fence });
    expect(await other.next("error")).toMatchObject({ code: "stale_lease", jobId, attempt: 1 });
    expect((await stored(jobId))?.lease).toBeNull();
    // ... and the job itself refuses any agent but the first to accept under the token.
    agent.send({ type: "job_accept", ...fence });
    await poll(async () => (await job(jobId).get())?.status).toBe("RUNNING");
    expect(await job(jobId).agentMessage("agent_other", { type: "job_accept", ...fence })).toMatchObject({
      ok: false,
      error: { code: "stale_lease" },
    });
    expect((await stored(jobId))?.lease).toMatchObject({ agentId, leaseToken: offer.leaseToken });
    // Nor can a new token be minted away from the holder.
    expect(await job(jobId).reissueLease(1)).toEqual({ kind: "held", agentId, leaseToken: offer.leaseToken });
    agent.send(finished(jobId, offer.leaseToken));
    await poll(async () => (await job(jobId).get())?.status).toBe("SUCCEEDED");
    expect((await job(jobId).get())?.agentId).toBe(agentId);
    agent.close();
    other.close();
  });

  it("refuses a frame under the offered lease sent before the accept, and changes nothing", async () => {
    const { agent, jobId, offer } = await offered("eager", "offer-early");
    const fence = { jobId, attempt: 1, leaseToken: offer.leaseToken };
    agent.send({ type: "step_started", ...fence, stepId: "s1", startedAt: new Date().toISOString() });
    expect(await agent.next("error")).toMatchObject({ code: "stale_lease", jobId, attempt: 1 });
    const view = await job(jobId).get();
    expect(view?.status).toBe("QUEUED");
    expect(view?.steps.map((s) => s.state)).toEqual(["pending"]);
    // The accept that follows still confirms the offer.
    agent.send({ type: "job_accept", ...fence });
    await poll(async () => (await job(jobId).get())?.status).toBe("RUNNING");
    agent.close();
  });

  it("mints a new token once an offer is turned down: the old one is refused, in frames, heartbeats and uploads", async () => {
    const { agent, jobId, offer } = await offered("refuser", "offer-reject");
    agent.send({ type: "job_reject", jobId, attempt: 1, leaseToken: offer.leaseToken, reason: "busy, try again" });
    await poll(async () => (await stored(jobId))?.leaseToken).not.toBe(offer.leaseToken);
    const after = await stored(jobId);
    expect(after?.status).toBe("QUEUED");
    expect(after?.lease).toBeNull();
    // The registry holds the new token for the next offer.
    await poll(() => bookToken(jobId)).toBe(after?.leaseToken);
    expect(await job(jobId).renewLease(offer.lease.agentId, 1, offer.leaseToken)).toMatchObject({ ok: false });
    expect(await job(jobId).leaseValid(1, offer.leaseToken, offer.lease.agentId)).toBe(false);
    agent.send({ type: "job_accept", jobId, attempt: 1, leaseToken: offer.leaseToken });
    expect(await agent.next("error")).toMatchObject({ code: "stale_lease", jobId, attempt: 1 });
    expect((await job(jobId).get())?.status).toBe("QUEUED");
    agent.close();
  });

  it("re-offers a timed-out offer to another agent under a new token; the first agent's late accept is refused", async () => {
    const { agent: slow, jobId, offer } = await offered("slow", "offer-late");
    const quickPair = await pairAgent("quick-late");
    const quick = await TestAgent.connect(quickPair.token, { workspaces: ["offer-late"] });
    await runInDurableObject(registry(), (reg: AgentRegistryDO) => reg.book.testAmend(jobId, { deadline: 1 }));
    await runDurableObjectAlarm(registry());
    const second = await quick.next("job_offer");
    expect(second.jobId).toBe(jobId);
    expect(second.leaseToken).not.toBe(offer.leaseToken);
    expect((await stored(jobId))?.leaseToken).toBe(second.leaseToken);
    // The slow agent's accept comes late: refused, wherever it is checked.
    slow.send({ type: "job_accept", jobId, attempt: 1, leaseToken: offer.leaseToken });
    expect(await slow.next("error")).toMatchObject({ code: "stale_lease", jobId, attempt: 1 });
    expect(
      await job(jobId).agentMessage(offer.lease.agentId, {
        type: "job_accept",
        jobId,
        attempt: 1,
        leaseToken: offer.leaseToken,
      }),
    ).toMatchObject({ ok: false });
    quick.send({ type: "job_accept", jobId, attempt: 1, leaseToken: second.leaseToken });
    await poll(async () => (await job(jobId).get())?.agentId).toBe(quickPair.agentId);
    expect((await job(jobId).get())?.status).toBe("RUNNING");
    slow.close();
    quick.close();
  });

  it("re-offers under a new token even when the token could not be reissued as the offer ended", async () => {
    const { agent: first, jobId, offer } = await offered("unlucky", "offer-reissue");
    const next = await TestAgent.connect((await pairAgent("next-in-line")).token, { workspaces: ["offer-reissue"] });
    // The job is out of reach for the one call made as the offer ends.
    await runInDurableObject(registry(), (reg: AgentRegistryDO) => {
      const jobs = (reg as unknown as { dispatcher: { jobs: { call: (...a: unknown[]) => Promise<unknown> } } })
        .dispatcher.jobs;
      const real = jobs.call.bind(jobs);
      let failures = 1;
      jobs.call = (...a: unknown[]) => (failures-- > 0 ? Promise.reject(new Error("job out of reach")) : real(...a));
    });
    first.send({ type: "job_reject", jobId, attempt: 1, leaseToken: offer.leaseToken, reason: "busy, try again" });
    // The next agent is offered the attempt only under a token the job minted since.
    const second = await next.next("job_offer");
    expect(second.jobId).toBe(jobId);
    expect(second.leaseToken).not.toBe(offer.leaseToken);
    expect((await stored(jobId))?.leaseToken).toBe(second.leaseToken);
    first.send({ type: "job_accept", jobId, attempt: 1, leaseToken: offer.leaseToken });
    expect(await first.next("error")).toMatchObject({ code: "stale_lease", jobId, attempt: 1 });
    next.send({ type: "job_accept", jobId, attempt: 1, leaseToken: second.leaseToken });
    await poll(async () => (await job(jobId).get())?.status).toBe("RUNNING");
    first.close();
    next.close();
  });

  it("a cancelled job's offered lease ends with it: the job never names the agent it was only offered to", async () => {
    const agent = await TestAgent.connect((await pairAgent("offeree")).token, { workspaces: ["offer-cancel"] });
    const jobId = await queuedJob("offer-cancel");
    await job(jobId).dispatch(1);
    await agent.next("job_offer");
    await job(jobId).cancel({ id: "42", isAdmin: true }, "changed my mind");
    const view = await job(jobId).get();
    expect(view?.status).toBe("CANCELLED");
    expect(view?.agentId).toBeNull();
    agent.close();
  });
});
