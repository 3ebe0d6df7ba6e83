// The state writes a READ_ONLY job makes (issue 18, cost per job): each one is a billed row, and
// carries the effects it queues (a ledger snapshot among them) and the log appended since: no
// outbox or log row of their own. The offer's token is stored by the create that queues the
// attempt, the hand-over writes nothing (its mark and done "enqueue" item go with the agent's
// batch), a rule answer rides with the commit that ends the job, and once its effects are done
// one more write clears them from the record (no commit follows a final job's).
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, onTestFinished } from "vitest";
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

/** Every alarm write of the job from now on (setAlarm's time, or null for deleteAlarm), and its deleteAll. */
async function recordAlarmWrites(jobId: string): Promise<(number | null | "deleteAll")[]> {
  const written: (number | null | "deleteAll")[] = [];
  await runInDurableObject(jobStubOf(jobId), (i: JobDO) => {
    const storage = insides(i).ctx.storage;
    const set = storage.setAlarm.bind(storage);
    const del = storage.deleteAlarm.bind(storage);
    const wipe = storage.deleteAll.bind(storage);
    storage.deleteAll = (options?: DurableObjectPutOptions) => {
      written.push("deleteAll");
      return wipe(options);
    };
    storage.setAlarm = (at: number | Date, options?: DurableObjectSetAlarmOptions) => {
      written.push(Number(at));
      return set(at, options);
    };
    storage.deleteAlarm = (options?: DurableObjectSetAlarmOptions) => {
      written.push(null);
      return del(options);
    };
  });
  return written;
}

/** The kinds of the effects a written record carries (its owed batches). */
const owedKinds = (record: JobState): string[] =>
  ((record as { owed?: { items: ({ kind: string } | null)[] }[] }).owed ?? []).flatMap((b) =>
    b.items.flatMap((i) => (i ? [i.kind] : [])),
  );

const tablesOf = (jobId: string) =>
  runInDurableObject(jobStubOf(jobId), (_i: JobDO, state) =>
    state.storage.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
      .toArray()
      .map((t) => t.name)
      .filter((name) => !name.startsWith("_cf_")),
  );

const storedState = (jobId: string) =>
  runInDurableObject(jobStubOf(jobId), (_i: JobDO, state) => state.storage.kv.get<JobState>("job"));

describe("the state writes of a READ_ONLY job", () => {
  it("are the create (with the offer's token), the agent's batch (with the hand-over's mark and the answer), the clear", async () => {
    const { agentId, token } = await pairAgent("commits");
    const agent = await TestAgent.connect(token, { workspaces: ["commits"], agentName: "commits" });
    try {
      const jobId = newJobId();
      const written = await recordWrites(jobId);
      const alarms = await recordAlarmWrites(jobId);
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
      // Everything the job owes is done (the archive is its last effect; a short log goes on the ledger row).
      await poll(async () => (await stub.opCounts())["outbox.archive_log_ledger"]).toBe(1);
      await poll(async () => written.length).toBe(3);
      expect(written.map((s) => s.status)).toEqual(["QUEUED", "SUCCEEDED", "SUCCEEDED"]);
      // Each write carries what its commit owes; the last only drops what was done. The batch's
      // write dropped the create's items, the hand-over's "enqueue" among them.
      const owed = written.map((s) => owedKinds(s));
      expect(owed[0]).toEqual(expect.arrayContaining(["ledger", "event", "enqueue"]));
      expect(owed[1]).toEqual(expect.arrayContaining(["ledger", "event", "archive_log"]));
      expect(owed[1]).not.toContain("enqueue");
      expect(owed[2]).toEqual([]);
      // The batch's log rode on its write: no log table was created.
      expect((written[1] as { log?: unknown } | undefined)?.log).toEqual([
        expect.objectContaining({ seq: -1, stream: "system" }), // the attempt's header
        expect.objectContaining({ seq: 0, stepId: "s1", data: "nothing to commit, working tree clean\n" }),
      ]);
      expect(await tablesOf(jobId)).toEqual([]);
      // The create stored the token the offer went with, before the hand-over; the mark of the
      // hand-over came with the batch, which took the lease.
      expect(written[0]?.leaseToken).toBe(offer.leaseToken);
      expect(written[0]?.dispatchedAttempt).toBe(0);
      expect(written[0]?.lease).toBeNull();
      expect(written[1]?.dispatchedAttempt).toBe(1);
      expect(written[1]?.lease).toMatchObject({ agentId, leaseToken: offer.leaseToken });
      // The finishing write carries the rule answer: no answer commit of its own followed.
      expect(written[1]?.answer?.text).toBe("The working tree is clean.");
      const ledger = await env.DB.prepare("SELECT status, answer FROM jobs WHERE id = ?")
        .bind(jobId)
        .first<{ status: string; answer: string | null }>();
      expect(ledger).toEqual({ status: "SUCCEEDED", answer: "The working tree is clean." });
      // Two alarm writes: the create's backstop, then (final, owing nothing) straight to the
      // purge — the backstop does not fire just to re-arm. The purge itself writes no alarm.
      const finishedAt = written[2]?.finishedAt ?? 0;
      const purgeAt = finishedAt + 7 * 86_400_000; // JOB_STATE_RETENTION_DAYS, below LOG_RETENTION_DAYS
      await poll(async () => alarms.length).toBe(2);
      expect(alarms[1]).toBe(purgeAt);
      expect(await runInDurableObject(stub, (i: JobDO) => insides(i).ctx.storage.getAlarm())).toBe(purgeAt);
      await runInDurableObject(stub, (i: JobDO) => {
        const s = insides(i).load() as JobState;
        s.finishedAt = Date.now() - 8 * 86_400_000;
        insides(i).save(s);
      });
      expect(await runDurableObjectAlarm(stub)).toBe(true);
      expect(await storedState(jobId)).toBeUndefined();
      // (The test harness deletes the alarm it runs, as its firing would.)
      expect(alarms.slice(2)).toEqual([null, "deleteAll"]);
    } finally {
      agent.close();
    }
  });

  it("creates, plans and queues a gateway job (a ready spec) in one write, its alarm the backstop", async () => {
    // Nobody serves the project: the registry keeps the attempt, and its waiting notice is the
    // record's next write.
    const jobId = newJobId();
    const written = await recordWrites(jobId);
    const alarms = await recordAlarmWrites(jobId);
    const stub = jobStubOf(jobId);
    const before = Date.now();
    const res = await stub.createFromSpec(
      {
        jobId,
        attempt: 1,
        provider: "openclaw",
        projectId: "commits-gateway-nobody",
        timeoutS: 60,
        steps: [{ id: "s1", action: "git_status", params: {}, risk: "READ_ONLY", timeoutS: 60 }],
      },
      { id: "api", isAdmin: true },
    );
    expect(res).toMatchObject({ ok: true, value: { status: "QUEUED" } });
    await poll(async () => (await stub.opCounts())["outbox.enqueue_direct_pending"]).toBe(1);
    // The first write is already QUEUED, carrying the create's, the plan's and the queue's events.
    expect(written[0]?.status).toBe("QUEUED");
    expect(written[0]?.decidedBy).toBe("api");
    expect(written[0]?.leaseToken).toEqual(expect.any(String));
    expect(owedKinds(written[0] as JobState)).toEqual(expect.arrayContaining(["ledger", "event", "enqueue"]));
    expect(written.map((s) => s.status)).not.toContain("CREATED");
    // Its first alarm is the drain's backstop, not "now" (which would fire to plan a CREATED job).
    expect(alarms[0]).toBeGreaterThan(before + 1000);
  });

  it("stores the hand-over's mark with the record's next write (here the registry's waiting notice)", async () => {
    // An agent is connected, but none serves the job's project: the registry keeps the attempt
    // and tells the job why it waits.
    const { token } = await pairAgent("commits-elsewhere");
    const agent = await TestAgent.connect(token, { workspaces: ["commits-elsewhere"] });
    onTestFinished(() => agent.close());
    const jobId = newJobId();
    const written = await recordWrites(jobId);
    const stub = jobStubOf(jobId);
    await stub.create({ jobId, projectId: "commits-nobody", intent: "check git status", userId: "42", chatId: null });
    await poll(async () => (await stub.opCounts())["outbox.enqueue_direct_pending"]).toBe(1);
    await poll(async () => written.length).toBe(2);
    expect(written.map((s) => s.status)).toEqual(["QUEUED", "QUEUED"]);
    expect(written[0]?.dispatchedAttempt).toBe(0);
    expect(written[1]?.notice).toEqual(expect.any(String));
    expect(written[1]?.dispatchedAttempt).toBe(1);
    expect(written[1]?.lease).toBeNull();
    // A queue delivery of the same attempt is dropped, and writes nothing.
    expect(await stub.dispatch(1)).toBe("duplicate");
    expect(written).toHaveLength(2);
  });
});
