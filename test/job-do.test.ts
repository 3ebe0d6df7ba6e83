import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { JobView } from "../protocol/index.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import type { JobState } from "../src/jobs/job-state.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { jobFinished } from "./helpers/frames.ts";
import { insides } from "./helpers/job-insides.ts";
import { ledgerStatuses, pairAgent, TestAgent } from "./helpers/worker.ts";

const owner = { id: "42", isAdmin: false };
const stranger = { id: "99", isAdmin: false };

function stub(jobId: string) {
  return env.JOB.get(env.JOB.idFromName(jobId));
}

/** Creates a job (its planning alarm not yet run). */
async function created(intent: string, projectId = "default"): Promise<string> {
  const jobId = newJobId();
  await stub(jobId).create({ jobId, projectId, intent, userId: owner.id, chatId: null });
  return jobId;
}

/** Creates a job and runs its planning alarm. */
async function planned(intent: string): Promise<{ jobId: string; job: JobView }> {
  const jobId = newJobId();
  const s = stub(jobId);
  await s.create({ jobId, projectId: "default", intent, userId: owner.id, chatId: null });
  await runDurableObjectAlarm(s);
  const job = await s.get();
  if (!job) throw new Error("job vanished");
  return { jobId, job };
}

async function edit(jobId: string, fn: (s: JobState) => void): Promise<void> {
  await runInDurableObject(stub(jobId), (instance: JobDO) => {
    const state = insides(instance).load();
    if (!state) throw new Error("no state");
    fn(state);
    insides(instance).save(state);
  });
}

async function ledgerStatus(jobId: string): Promise<string | undefined> {
  const row = await env.DB.prepare("SELECT status FROM jobs WHERE id = ?").bind(jobId).first<{ status: string }>();
  return row?.status;
}

describe("JobDO planning and approval", () => {
  it("auto-approves a READ_ONLY job and queues it", async () => {
    const { jobId, job } = await planned("check git status");
    expect(job.status).toBe("QUEUED");
    expect(job.attempt).toBe(1);
    expect(await ledgerStatus(jobId)).toBe("QUEUED");
  });

  it("keeps a WRITE job waiting for the requester and refuses anyone else", async () => {
    const { jobId, job } = await planned("create a new file notes.txt with hi");
    expect(job.status).toBe("PLANNED");
    expect(job.needsApproval).toBe(true);
    const refused = await stub(jobId).approve(stranger);
    expect(refused).toMatchObject({ ok: false, error: { code: "forbidden" } });
    expect((await stub(jobId).get())?.status).toBe("PLANNED");
    const ok = await stub(jobId).approve(owner);
    expect(ok.ok && ok.value.status).toBe("QUEUED");
    const again = await stub(jobId).approve(owner);
    expect(again).toMatchObject({ ok: false, error: { code: "conflict" } });
  });

  it("lets an admin approve someone else's job", async () => {
    const { jobId } = await planned("create a new file a.txt with x");
    const res = await stub(jobId).approve({ id: "7", isAdmin: true });
    expect(res.ok).toBe(true);
  });

  it("cancels a job nobody decided on when the approval timeout passes", async () => {
    const { jobId } = await planned("create a new file b.txt with y");
    await edit(jobId, (s) => {
      s.approvalDeadline = Date.now() - 1;
    });
    await runDurableObjectAlarm(stub(jobId));
    const job = await stub(jobId).get();
    expect(job?.status).toBe("CANCELLED");
    expect(job?.error).toContain("approval timeout");
  });

  it("fails planning clearly for an intent it cannot understand", async () => {
    const { job } = await planned("make me a sandwich");
    expect(job.status).toBe("FAILED");
    expect(job.error).toMatch(/^I could not map "make me a sandwich" to an action I can run\. Try phrases like: /);
    expect(job.plan).toBeNull();
  });

  it("cancels from CREATED, PLANNED and QUEUED and refuses to cancel a finished job", async () => {
    const jobId = await created("check git status", "default");
    expect(await stub(jobId).cancel(owner)).toMatchObject({ ok: true, value: { status: "CANCELLED" } });
    await runDurableObjectAlarm(stub(jobId)); // planning must not resurrect it
    expect((await stub(jobId).get())?.status).toBe("CANCELLED");
    expect(await stub(jobId).cancel(owner)).toMatchObject({ ok: false, error: { code: "conflict" } });

    const p = await planned("create a new file c.txt with z");
    expect(await stub(p.jobId).cancel(owner)).toMatchObject({ ok: true, value: { status: "CANCELLED" } });
    const q = await planned("check git status");
    expect(await stub(q.jobId).cancel(stranger)).toMatchObject({ ok: false, error: { code: "forbidden" } });
    expect(await stub(q.jobId).cancel(owner)).toMatchObject({ ok: true, value: { status: "CANCELLED" } });
  });
});

describe("JobDO planning that was cut off", () => {
  it("plans again when an attempt was cut off by a restart, and fails after the second", async () => {
    for (const [attempts, expected] of [
      [1, "QUEUED"],
      [2, "FAILED"],
    ] as const) {
      const jobId = newJobId();
      await runInDurableObject(stub(jobId), async (i: JobDO) => {
        await insides(i).createUnplanned({
          jobId,
          projectId: "default",
          intent: "check git status",
          userId: owner.id,
          chatId: null,
        });
        const s = insides(i).load();
        if (!s) throw new Error("no state");
        // As if the object had died during the planner call 100 s ago.
        s.planningStarted = true;
        s.planningStartedAt = Date.now() - 100_000;
        s.planAttempts = attempts;
        insides(i).save(s);
        await insides(i).ctx.storage.setAlarm(Date.now());
      });
      await runDurableObjectAlarm(stub(jobId));
      const job = await stub(jobId).get();
      expect(job?.status).toBe(expected);
      if (expected === "FAILED") expect(job?.error).toMatch(/planning did not finish/);
    }
  });

  it("generatePlan plans a created job at once", async () => {
    const { generatePlan } = await import("../src/core/orchestrator.ts");
    const jobId = await created("run the tests", "default");
    await runInDurableObject(stub(jobId), (i: JobDO) => insides(i).ctx.storage.deleteAlarm());
    const job = await generatePlan(env, jobId);
    expect(job.status).toBe("PLANNED");
    expect(job.plan?.proposedSteps[0]?.action).toBe("run_tests");
  });
});

describe("JobDO dispatch, lease and fencing", () => {
  it("drops a second delivery of the same dispatch attempt", async () => {
    const { jobId } = await planned("show the last 3 commits");
    const first = await stub(jobId).dispatch(1);
    expect(["offered", "pending", "duplicate"]).toContain(first);
    expect(await stub(jobId).dispatch(1)).toBe("duplicate");
    expect(await stub(jobId).dispatch(7)).toBe("stale");
  });

  it("runs a job on a connected agent and refuses a stale attempt", async () => {
    const { token } = await pairAgent("fence-agent");
    const agent = await TestAgent.connect(token, { workspaces: ["fence"] });
    const jobId = await created("check git status", "fence");
    await runDurableObjectAlarm(stub(jobId));
    await stub(jobId).dispatch(1);
    const offer = await agent.next("job_offer");
    expect(offer.jobId).toBe(jobId);
    const fence = { jobId, attempt: offer.attempt, leaseToken: offer.leaseToken };
    agent.send({ type: "job_accept", ...fence });
    await waitStatus(jobId, "RUNNING");
    agent.send({ type: "log", ...fence, stepId: "s1", seq: 0, stream: "stdout", data: "## main\n" });
    agent.send({ type: "log", ...fence, stepId: "s1", seq: 0, stream: "stdout", data: "## main\n" }); // duplicate
    agent.send({ type: "job_accept", jobId, attempt: 1, leaseToken: "x".repeat(32) });
    const err = await agent.next("error");
    expect(err.code).toBe("stale_lease");
    agent.send(jobFinished(fence));
    const job = await waitStatus(jobId, "SUCCEEDED");
    expect(job.logTail).toMatch(/^── attempt 1 on agent test \(agent_[0-9a-f]+\) at [0-9T:.-]+Z ──\n## main$/);
    expect(await ledgerStatus(jobId)).toBe("SUCCEEDED");
    agent.close();
  });

  it("re-dispatches a READ_ONLY job whose lease expired, and fails a WRITE job that had started", async () => {
    const { token } = await pairAgent("lease-agent");
    const agent = await TestAgent.connect(token, { workspaces: ["lease"] });
    const ro = await created("list files", "lease");
    await runDurableObjectAlarm(stub(ro));
    await stub(ro).dispatch(1);
    const offer = await agent.next("job_offer");
    agent.send({ type: "job_accept", jobId: ro, attempt: 1, leaseToken: offer.leaseToken });
    await waitStatus(ro, "RUNNING");
    await edit(ro, (s) => {
      if (s.lease) s.lease.expiresAt = Date.now() - 1;
    });
    await runDurableObjectAlarm(stub(ro));
    const requeued = await stub(ro).get();
    expect(requeued?.status).toBe("QUEUED");
    expect(requeued?.attempt).toBe(2);

    const rw = await created("create a new file d.txt with w", "lease");
    await runDurableObjectAlarm(stub(rw));
    await stub(rw).approve(owner);
    await stub(rw).dispatch(1);
    // The re-dispatched attempt 2 of the first job is offered to this agent too.
    const offer2 = await agent.nextOf("job_offer", (m) => m.jobId === rw);
    const fence = { jobId: rw, attempt: 1, leaseToken: offer2.leaseToken };
    agent.send({ type: "job_accept", ...fence });
    await waitStatus(rw, "RUNNING");
    agent.send({ type: "step_started", ...fence, stepId: "s1", startedAt: new Date().toISOString() });
    await waitFor(async () => (await stub(rw).get())?.steps[0]?.state === "running");
    await edit(rw, (s) => {
      if (s.lease) s.lease.expiresAt = Date.now() - 1;
    });
    await runDurableObjectAlarm(stub(rw));
    // A started WRITE step may still complete: flagged unreachable, not failed (test/liveness-unreachable).
    const waiting = await stub(rw).get();
    expect(waiting?.status).toBe("RUNNING");
    expect(waiting?.agentUnreachableSince).toBeTruthy();
    await edit(rw, (s) => {
      s.unreachableSince = Date.now() - 3_600_000;
    });
    await runDurableObjectAlarm(stub(rw));
    const failed = await stub(rw).get();
    expect(failed?.status).toBe("FAILED");
    expect(failed?.error).toMatch(/^outcome unknown: the step may have completed/);
    agent.close();
  });

  it("fails a dead-lettered job with the reason", async () => {
    const { jobId } = await planned("check git status");
    expect(await stub(jobId).deadLetter(1, "boom")).toBe(true);
    const job = await stub(jobId).get();
    expect(job?.status).toBe("FAILED");
    expect(job?.error).toContain("boom");
  });

  it("keeps ledger writes in the outbox through a D1 failure and replays them", async () => {
    await env.DB.exec("ALTER TABLE jobs RENAME TO jobs_offline");
    let jobId = "";
    try {
      jobId = newJobId();
      await stub(jobId).create({
        jobId,
        projectId: "default",
        intent: "check git status",
        userId: owner.id,
        chatId: null,
      });
      await runInDurableObject(stub(jobId), (i: JobDO) => {
        expect(insides(i).outbox.size()).toBeGreaterThan(0);
      });
    } finally {
      await env.DB.exec("ALTER TABLE jobs_offline RENAME TO jobs");
    }
    expect(await ledgerStatus(jobId)).toBeUndefined();
    await runInDurableObject(stub(jobId), async (i: JobDO) => {
      insides(i).ctx.storage.sql.exec("UPDATE outbox SET next_at = 0");
    });
    await runDurableObjectAlarm(stub(jobId));
    await runDurableObjectAlarm(stub(jobId));
    expect(await ledgerStatus(jobId)).toBe("QUEUED");
    expect(await ledgerStatuses(jobId)).toEqual(["CREATED", "PLANNED", "QUEUED"]);
  });
});

async function waitFor(fn: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function waitStatus(jobId: string, status: string): Promise<JobView> {
  let last: JobView | null = null;
  await waitFor(async () => {
    last = await stub(jobId).get();
    return last?.status === status;
  });
  if (!last) throw new Error("no job");
  return last;
}
