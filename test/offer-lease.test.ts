// Issue 17: the offer carries the lease. Through the real AgentRegistryDO and JobDO: the JobDO has
// granted the attempt's lease (agent, token, expiry) before the offer leaves, the accept only
// confirms it (QUEUED → RUNNING), frames under the lease of a refused or timed-out offer are
// refused afterwards, and taking a lease back never touches an accepted attempt.
import { env, runInDurableObject } from "cloudflare:test";
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
  it("is sent with the lease the JobDO already granted; the accept confirms it and the job runs", async () => {
    const { agent, agentId, jobId, offer } = await offered("leased", "offer-lease");
    expect(offer.lease.agentId).toBe(agentId);
    // Granted before the offer left: the JobDO holds this very lease while the job is still QUEUED.
    const before = await stored(jobId);
    expect(before?.status).toBe("QUEUED");
    expect(before?.leaseToken).toBe(offer.leaseToken);
    expect(before?.lease).toMatchObject({ agentId, attempt: 1, leaseToken: offer.leaseToken });
    expect(before?.lease?.expiresAt).toBe(offer.lease.expiresAt);
    // The registry's book carries the same token (a permission request is fenced by it).
    const book = await runInDurableObject(registry(), (_i: AgentRegistryDO, state) =>
      state.storage.sql
        .exec<{ lease_token: string }>("SELECT lease_token FROM assignments WHERE job_id = ?", jobId)
        .one(),
    );
    expect(book.lease_token).toBe(offer.leaseToken);
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

  it("takes a rejected offer's lease back: its token is refused, in frames, heartbeats and uploads", async () => {
    const { agent, jobId, offer } = await offered("refuser", "offer-reject");
    agent.send({ type: "job_reject", jobId, attempt: 1, leaseToken: offer.leaseToken, reason: "busy, try again" });
    await poll(async () => (await stored(jobId))?.lease ?? null).toBe(null);
    const after = await stored(jobId);
    expect(after?.status).toBe("QUEUED");
    expect(after?.leaseToken).not.toBe(offer.leaseToken);
    expect(await job(jobId).renewLease(offer.lease.agentId, 1, offer.leaseToken)).toMatchObject({ ok: false });
    expect(await job(jobId).leaseValid(1, offer.leaseToken, offer.lease.agentId)).toBe(false);
    agent.send({ type: "job_accept", jobId, attempt: 1, leaseToken: offer.leaseToken });
    expect(await agent.next("error")).toMatchObject({ code: "stale_lease", jobId, attempt: 1 });
    expect((await job(jobId).get())?.status).toBe("QUEUED");
    agent.close();
  });

  it("never takes back the lease of an accepted attempt", async () => {
    const { agent, agentId, jobId, offer } = await offered("holder", "offer-held");
    agent.send({ type: "job_accept", jobId, attempt: 1, leaseToken: offer.leaseToken });
    await poll(async () => (await job(jobId).get())?.status).toBe("RUNNING");
    // A take-back that comes late (its offer timed out while the accept was on its way) is a no-op.
    expect(await job(jobId).takeBackLease(agentId, 1)).toBe(false);
    expect((await stored(jobId))?.lease?.leaseToken).toBe(offer.leaseToken);
    // And a grant for another agent cannot steal it.
    expect(await job(jobId).offerLease("agent_other", 1)).toMatchObject({ ok: false, error: { code: "stale_lease" } });
    agent.send(finished(jobId, offer.leaseToken));
    await poll(async () => (await job(jobId).get())?.status).toBe("SUCCEEDED");
    agent.close();
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
