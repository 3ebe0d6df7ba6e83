// The state writes a READ_ONLY job makes (issue 18, cost per job): each one is a billed row, and
// with it go an outbox row pair and a ledger snapshot. The dispatch mark is stored with the lease
// the offer grants, and a rule answer with the commit that ends the job.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { JobDO } from "../src/jobs/job-do.ts";
import type { JobState } from "../src/jobs/job-state.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { jobFinished } from "./helpers/frames.ts";
import { insides } from "./helpers/job-insides.ts";
import { jobStubOf } from "./helpers/offers.ts";
import { pairAgent, TestAgent } from "./helpers/worker.ts";

const poll = <T>(fn: () => Promise<T>) => expect.poll(fn, { timeout: 10_000, interval: 50 });

/** Every state write of the job from now on (its object's own kv, observed in place). */
async function recordWrites(jobId: string): Promise<JobState[]> {
  const written: JobState[] = [];
  await runInDurableObject(jobStubOf(jobId), (i: JobDO) => {
    const kv = insides(i).ctx.storage.kv;
    const real = kv.put.bind(kv);
    kv.put = (key: string, value: unknown) => {
      if (key === "job") written.push(structuredClone(value as JobState));
      real(key, value);
    };
  });
  return written;
}

const storedState = (jobId: string) =>
  runInDurableObject(jobStubOf(jobId), (_i: JobDO, state) => state.storage.kv.get<JobState>("job"));

describe("the state writes of a READ_ONLY job", () => {
  it("are three: the create, the hand-over (dispatch mark and the offer's token), the agent's batch with the answer", async () => {
    const { agentId, token } = await pairAgent("commits");
    const agent = await TestAgent.connect(token, { workspaces: ["commits"], agentName: "commits" });
    try {
      const jobId = newJobId();
      const written = await recordWrites(jobId);
      const stub = jobStubOf(jobId);
      await stub.create({ jobId, projectId: "commits", intent: "check git status", userId: "42", chatId: null });
      const offer = await agent.nextOf("job_offer", (m) => m.jobId === jobId, 10_000);
      const fence = { jobId, attempt: offer.attempt, leaseToken: offer.leaseToken };
      const result = await stub.agentBatch(agentId, [
        { type: "job_accept", ...fence },
        { type: "step_started", ...fence, stepId: "s1", startedAt: new Date().toISOString() },
        {
          type: "log",
          ...fence,
          stepId: "s1",
          seq: 0,
          stream: "stdout",
          data: "nothing to commit, working tree clean\n",
        },
        { type: "step_finished", ...fence, stepId: "s1", outcome: "succeeded", exitCode: 0, durationMs: 3 },
        jobFinished(fence),
      ]);
      expect(result).toEqual({ ok: true, value: 5 });
      // Everything the job owes is done (the archive is its last effect).
      await poll(async () => (await stub.opCounts())["outbox.archive_log"]).toBe(1);
      expect(written.map((s) => s.status)).toEqual(["QUEUED", "QUEUED", "SUCCEEDED"]);
      // The hand-over's write carries the dispatch mark and the token the offer went with; no
      // agent holds the lease until its accept (the batch's write).
      expect(written[1]?.dispatchedAttempt).toBe(1);
      expect(written[1]?.leaseToken).toBe(offer.leaseToken);
      expect(written[1]?.lease).toBeNull();
      expect(written[2]?.lease).toMatchObject({ agentId, leaseToken: offer.leaseToken });
      // The finishing write carries the rule answer: no answer commit of its own followed.
      expect(written[2]?.answer?.text).toBe("The working tree is clean.");
      const ledger = await env.DB.prepare("SELECT status, answer FROM jobs WHERE id = ?")
        .bind(jobId)
        .first<{ status: string; answer: string | null }>();
      expect(ledger).toEqual({ status: "SUCCEEDED", answer: "The working tree is clean." });
    } finally {
      agent.close();
    }
  });

  it("stores the dispatch mark after the call when no offer was made (nothing left only in memory)", async () => {
    const jobId = newJobId();
    const written = await recordWrites(jobId);
    const stub = jobStubOf(jobId);
    await stub.create({ jobId, projectId: "commits-nobody", intent: "check git status", userId: "42", chatId: null });
    // No agent serves the project: the registry keeps the attempt and no lease is granted.
    await poll(async () => (await stub.opCounts())["outbox.enqueue_direct_pending"]).toBe(1);
    expect(written.map((s) => s.status)).toEqual(["QUEUED", "QUEUED"]);
    const stored = await storedState(jobId);
    expect(stored?.dispatchedAttempt).toBe(1);
    expect(stored?.lease).toBeNull();
    // A queue delivery of the same attempt is dropped.
    expect(await stub.dispatch(1)).toBe("duplicate");
  });
});
