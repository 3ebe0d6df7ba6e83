// The JobStore's two ways to save a job: commit (state, ledger snapshot and effects in one
// transaction) and saveLiveness (the lease's liveness and planning marks only, no ledger write).
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.ts";
import { newJobState } from "../src/jobs/decisions.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import type { JobState } from "../src/jobs/job-state.ts";
import { JobStore } from "../src/jobs/job-store.ts";
import { newJobId } from "../src/lib/crypto.ts";

describe("JobStore", () => {
  it("saveLiveness saves the lease and planning marks only, with no ledger item", async () => {
    const jobId = newJobId();
    await runInDurableObject(env.JOB.getByName(jobId), (_i: JobDO, state) => {
      let commits = 0;
      const store = new JobStore(
        state.storage,
        () => env,
        loadConfig(env),
        () => commits++,
      );
      const fresh = newJobState({ jobId, projectId: "p", intent: "check git status", userId: "u", chatId: null }, 1);
      store.commit(fresh);
      expect(commits).toBe(1);
      const queued = store.outbox.size();
      // A whole state passes the type check as a patch: only the liveness fields may be saved.
      const changed: JobState = {
        ...fresh,
        status: "FAILED",
        error: "must not be saved",
        planningStarted: true,
        planAttempts: 2,
        lease: { attempt: 1, agentId: "a1", leaseToken: "t", expiresAt: 42 },
      };
      store.saveLiveness(changed);
      const saved = store.load();
      expect(saved?.status).toBe("CREATED");
      expect(saved?.error).toBeNull();
      expect(saved?.planningStarted).toBe(true);
      expect(saved?.planAttempts).toBe(2);
      expect(saved?.lease?.expiresAt).toBe(42);
      expect(store.outbox.size()).toBe(queued);
      expect(commits).toBe(1);
    });
  });

  it("queues a ledger snapshot only for a commit that changes what the ledger row shows", async () => {
    const jobId = newJobId();
    await runInDurableObject(env.JOB.getByName(jobId), (_i: JobDO, state) => {
      const store = new JobStore(
        state.storage,
        () => env,
        loadConfig(env),
        () => undefined,
      );
      const ledgerItems = () =>
        state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox WHERE kind = 'ledger'").one().n;
      const clear = () => state.storage.sql.exec("DELETE FROM outbox");
      const s = newJobState({ jobId, projectId: "p", intent: "check git status", userId: "u", chatId: null }, 1);
      store.commit(s);
      expect(ledgerItems()).toBe(1);
      clear();
      // Not in the ledger row: a dispatch mark and a lease token.
      s.dispatchedAttempt = 1;
      s.leaseToken = "t";
      store.commit(s);
      expect(ledgerItems()).toBe(0);
      // In it: the status, the error, the holder.
      s.status = "QUEUED";
      store.commit(s);
      expect(ledgerItems()).toBe(1);
      clear();
      s.lease = { attempt: 1, agentId: "a1", leaseToken: "t", expiresAt: 42 };
      store.commit(s);
      expect(ledgerItems()).toBe(1);
      clear();
      // A new instance does not know what was queued before it: its first commit queues one.
      const next = new JobStore(
        state.storage,
        () => env,
        loadConfig(env),
        () => undefined,
      );
      const again = next.load() as JobState;
      next.commit(again);
      expect(ledgerItems()).toBe(1);
    });
  });
});
