// Why a final job's record is written once more after its effects are done (the "clear", issue
// 18's cost per job). The object is evicted long before its purge, so the purge runs on an
// instance that knows only what the record says: a record still owing the final commit's items
// (a ledger write, the log's archive) would have them performed again then — D1 rows (or an R2
// class A put, for a long log), dearer than the one storage write — and its storage kept until they were. With the
// clear, the purge finds nothing owed and only deletes.
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import type { JobDO } from "../src/jobs/job-do.ts";
import type { JobState } from "../src/jobs/job-state.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { jobFinished } from "./helpers/frames.ts";
import { insides, patchEnv } from "./helpers/job-insides.ts";
import { jobStubOf } from "./helpers/offers.ts";
import { pairAgent, TestAgent } from "./helpers/worker.ts";

vi.setConfig({ testTimeout: 30_000 });
const poll = <T>(fn: () => Promise<T>) => expect.poll(fn, { timeout: 10_000, interval: 50 });

/** Bindings that count the D1 batches and statements and the R2 puts made through them. */
function counting(real: Env, counts: { d1: number; r2: number }): Partial<Env> {
  const wrap = <T extends object>(target: T, method: string, bump: () => void): T =>
    new Proxy(target, {
      get(t, prop) {
        const value = Reflect.get(t, prop);
        if (typeof value !== "function") return value;
        if (prop !== method) return value.bind(t);
        return (...args: unknown[]) => {
          bump();
          return (value as (...a: unknown[]) => unknown).apply(t, args);
        };
      },
    });
  return {
    DB: wrap(
      wrap(real.DB, "batch", () => counts.d1++),
      "prepare",
      () => counts.d1++,
    ),
    ARCHIVE: wrap(real.ARCHIVE, "put", () => counts.r2++),
  };
}

describe("a final job's clear", () => {
  it("leaves the purge, on a fresh instance, nothing to perform again: it only deletes", async () => {
    const { agentId, token } = await pairAgent("final-clear");
    const agent = await TestAgent.connect(token, { workspaces: ["final-clear"] });
    try {
      const jobId = newJobId();
      const stub = jobStubOf(jobId);
      await stub.create({ jobId, projectId: "final-clear", intent: "check git status", userId: "42", chatId: null });
      const offer = await agent.nextOf("job_offer", (m) => m.jobId === jobId, 10_000);
      const fence = { jobId, attempt: offer.attempt, leaseToken: offer.leaseToken };
      expect(await stub.agentBatch(agentId, [{ type: "job_accept", ...fence }, jobFinished(fence)])).toEqual({
        ok: true,
        value: 2,
      });
      await poll(async () => (await stub.opCounts())["outbox.archive_log_ledger"]).toBe(1);
      // (Not asserted here that the record owes nothing: what follows shows what depends on it.)
      // Evicted; days later its purge alarm fires on a new instance.
      await runInDurableObject(stub, (i: JobDO) => {
        insides(i).restart();
        const s = insides(i).load() as JobState;
        s.finishedAt = Date.now() - 8 * 86_400_000; // past JOB_STATE_RETENTION_DAYS
        insides(i).save(s);
      });
      const counts = { d1: 0, r2: 0 };
      const restore = await patchEnv(jobId, (real) => counting(real, counts));
      try {
        expect(await runDurableObjectAlarm(stub)).toBe(true);
      } finally {
        await restore();
      }
      expect(counts).toEqual({ d1: 0, r2: 0 });
      expect(await runInDurableObject(stub, (_i: JobDO, state) => state.storage.kv.get("job"))).toBeUndefined();
    } finally {
      agent.close();
    }
  });
});
