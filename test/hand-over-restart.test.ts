// The hand-over of an attempt writes nothing (issue 18, cost per job): its token was stored by
// the commit that queued the attempt, and its mark and done "enqueue" item wait in memory for the
// record's next write. What a restart in between loses is redone, and redoing it is harmless:
// the accept under the offer's token is still taken, and a second hand-over of the same attempt
// and token leaves the registry's offer as it was.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import type { AgentRegistryDO } from "../src/agents/agent-registry-do.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import type { JobState } from "../src/jobs/job-state.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { jobFinished } from "./helpers/frames.ts";
import { insides, owedOnRecord } from "./helpers/job-insides.ts";
import { jobStubOf } from "./helpers/offers.ts";
import { pairAgent, TestAgent } from "./helpers/worker.ts";

vi.setConfig({ testTimeout: 30_000 });
const poll = <T>(fn: () => Promise<T>) => expect.poll(fn, { timeout: 10_000, interval: 50 });

type AssignmentRow = {
  state: string;
  agent_id: string | null;
  lease_token: string;
  attempt: number;
  deadline: number;
};

const assignmentOf = (jobId: string) =>
  runInDurableObject(
    env.AGENT_REGISTRY.getByName("global"),
    (_i: AgentRegistryDO, state) =>
      state.storage.sql.exec<AssignmentRow>("SELECT * FROM assignments WHERE job_id = ?", jobId).toArray()[0],
  );

const recordOf = (jobId: string) =>
  runInDurableObject(jobStubOf(jobId), (_i: JobDO, state) => ({
    state: state.storage.kv.get<JobState>("job"),
    owed: owedOnRecord(state.storage).flat(),
  }));

const restart = (jobId: string) => runInDurableObject(jobStubOf(jobId), (i: JobDO) => insides(i).restart());

/** A READ_ONLY job created for a fresh agent, offered to it (the create's drain handed it over). */
async function offeredJob(project: string) {
  const { agentId, token } = await pairAgent(project);
  const agent = await TestAgent.connect(token, { workspaces: [project], agentName: project });
  const jobId = newJobId();
  const stub = jobStubOf(jobId);
  await stub.create({ jobId, projectId: project, intent: "check git status", userId: "42", chatId: null });
  const offer = await agent.nextOf("job_offer", (m) => m.jobId === jobId, 10_000);
  await poll(async () => (await stub.opCounts())["outbox.enqueue_direct_offered"]).toBe(1);
  const fence = { jobId, attempt: offer.attempt, leaseToken: offer.leaseToken };
  const batch = [{ type: "job_accept" as const, ...fence }, jobFinished(fence)];
  return { agent, agentId, jobId, stub, offer, batch };
}

describe("a hand-over that writes nothing", () => {
  it("leaves the record as the create wrote it: the token stored, the mark and the done enqueue item only in memory", async () => {
    const { agent, jobId, stub, offer } = await offeredJob("handover-memory");
    try {
      const { state, owed } = await recordOf(jobId);
      expect(state?.leaseToken).toBe(offer.leaseToken);
      expect(state?.dispatchedAttempt).toBe(0);
      expect(owed).toContain("enqueue");
      // The object itself knows it handed the attempt over: a late queue message is dropped,
      // and dropping it writes nothing either.
      expect(await stub.dispatch(1)).toBe("duplicate");
      expect((await recordOf(jobId)).state?.updatedAt).toBe(state?.updatedAt);
    } finally {
      agent.close();
    }
  });

  it("takes the accept under the offer's token after a restart lost the hand-over's mark", async () => {
    const { agent, agentId, jobId, stub, batch } = await offeredJob("handover-restart-accept");
    try {
      await restart(jobId);
      expect((await recordOf(jobId)).state?.dispatchedAttempt).toBe(0);
      expect(await stub.agentBatch(agentId, batch)).toEqual({ ok: true, value: 2 });
      expect((await stub.get())?.status).toBe("SUCCEEDED");
      // The still-owed "enqueue" found the job running and handed nothing over again.
      await poll(async () => (await recordOf(jobId)).owed).toEqual([]);
      // (The one offer was consumed by offeredJob: none came since.)
      expect(agent.received.filter((m) => m.type === "job_offer" && m.jobId === jobId)).toEqual([]);
    } finally {
      agent.close();
    }
  });

  it("hands the attempt over again after a restart, and the registry keeps its offer as it was", async () => {
    const { agent, agentId, jobId, stub, offer, batch } = await offeredJob("handover-restart-again");
    try {
      const before = await assignmentOf(jobId);
      expect(before).toMatchObject({ state: "offered", agent_id: agentId, lease_token: offer.leaseToken });
      await restart(jobId);
      // The create's backstop alarm drains what the record still owes: the "enqueue" again.
      expect(await runDurableObjectAlarm(stub)).toBe(true);
      // (The counts of the first instance were never stored: the hand-over wrote nothing.)
      expect((await stub.opCounts())["outbox.enqueue_direct_offered"]).toBe(1);
      // The same offer, to the same agent, under the same token, with its deadline: nothing new.
      expect(await assignmentOf(jobId)).toEqual(before);
      expect(await stub.agentBatch(agentId, batch)).toEqual({ ok: true, value: 2 });
      expect((await stub.get())?.status).toBe("SUCCEEDED");
      // Frames on one socket arrive in order: a second offer would precede this answer.
      agent.send({ type: "job_accept", ...batch[0], jobId: newJobId() } as (typeof batch)[0]);
      await agent.next("error");
      expect(agent.received.filter((m) => m.type === "job_offer" && m.jobId === jobId)).toEqual([]);
    } finally {
      agent.close();
    }
  });

  it("tells the registry and the agent of a cancel after a restart lost the hand-over's mark", async () => {
    const { agent, jobId, stub } = await offeredJob("handover-restart-cancel");
    try {
      await restart(jobId);
      const res = await stub.cancel({ id: "42", isAdmin: true }, "changed my mind");
      expect(res.ok && res.value.status).toBe("CANCELLED");
      // The offer is withdrawn: the agent is told, and the registry holds the attempt no more.
      expect(await agent.nextOf("job_cancel", (m) => m.jobId === jobId, 10_000)).toMatchObject({ attempt: 1 });
      await poll(() => assignmentOf(jobId)).toBeUndefined();
    } finally {
      agent.close();
    }
  });
});
