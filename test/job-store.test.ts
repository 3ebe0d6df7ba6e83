// The JobStore's two ways to save a job: commit (state, ledger snapshot and effects in one
// transaction) and saveLiveness (the lease's liveness and planning marks only, no ledger write).
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { newJobState } from "../src/jobs/decisions.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import type { JobState } from "../src/jobs/job-state.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { insides, owedOnRecord, performAll, storeOver } from "./helpers/job-insides.ts";
import { jobStubOf, offered } from "./helpers/offers.ts";

describe("JobStore", () => {
  it("saveLiveness saves the lease and planning marks only, with no ledger item", async () => {
    const jobId = newJobId();
    await runInDurableObject(env.JOB.getByName(jobId), (_i: JobDO, state) => {
      let commits = 0;
      const store = storeOver(state.storage, () => {
        commits++;
      });
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

  it("peek() hands out the cached state frozen (a change throws); load() a copy; commits freeze no caller's object", async () => {
    const jobId = newJobId();
    await runInDurableObject(env.JOB.getByName(jobId), (_i: JobDO, state) => {
      const store = storeOver(state.storage);
      const s = newJobState({ jobId, projectId: "p", intent: "check git status", userId: "u", chatId: null }, 1);
      s.lease = { attempt: 1, agentId: "a1", leaseToken: "t", expiresAt: 42 };
      store.commit(s);
      // The caller's object stays its own to change.
      s.lease.expiresAt = 43;
      s.status = "QUEUED";
      const peeked = store.peek() as JobState;
      expect(peeked.status).toBe("CREATED");
      expect(() => {
        peeked.status = "FAILED";
      }).toThrow(TypeError);
      expect(() => {
        (peeked.lease as NonNullable<JobState["lease"]>).expiresAt = 0;
      }).toThrow(TypeError);
      expect(() => peeked.steps.push(peeked.steps[0] as JobState["steps"][number])).toThrow(TypeError);
      const copy = store.load() as JobState;
      copy.status = "QUEUED";
      expect(store.peek()?.status).toBe("CREATED");
      expect(store.peek()?.lease?.expiresAt).toBe(42);
      // A liveness patch is copied in, not frozen in place.
      const lease = { attempt: 1, agentId: "a1", leaseToken: "t", expiresAt: 50 };
      store.saveLiveness({ lease });
      lease.expiresAt = 51;
      expect(store.peek()?.lease?.expiresAt).toBe(50);
    });
  });

  it("queues a ledger snapshot only for a commit that changes what the ledger row shows", async () => {
    const jobId = newJobId();
    await runInDurableObject(env.JOB.getByName(jobId), (_i: JobDO, state) => {
      const store = storeOver(state.storage);
      const ledgerItems = () => store.outbox.items().filter((i) => i.kind === "ledger").length;
      const clear = () => performAll(store);
      const s = newJobState({ jobId, projectId: "p", intent: "check git status", userId: "u", chatId: null }, 1);
      store.commit(s);
      expect(ledgerItems()).toBe(1);
      clear();
      // Not in the ledger row: a dispatch mark and a lease token.
      s.dispatchedAttempt = 1;
      s.leaseToken = "t";
      store.commit(s);
      expect(ledgerItems()).toBe(0);
      // In it: the status, the error, the agent running the job.
      s.status = "QUEUED";
      store.commit(s);
      expect(ledgerItems()).toBe(1);
      clear();
      // The lease an offer carries is not in it while the job is QUEUED (no agent runs it yet) …
      s.lease = { attempt: 1, agentId: "a1", leaseToken: "t", expiresAt: 42 };
      store.commit(s);
      expect(ledgerItems()).toBe(0);
      // … and is from the accept on.
      s.status = "RUNNING";
      store.commit(s);
      expect(ledgerItems()).toBe(1);
      clear();
      s.lease = { attempt: 1, agentId: "a2", leaseToken: "t", expiresAt: 42 };
      store.commit(s);
      expect(ledgerItems()).toBe(1);
      clear();
      // A new instance does not know what was queued before it: its first commit queues one.
      const next = storeOver(state.storage);
      const again = next.load() as JobState;
      next.commit(again);
      expect(next.outbox.items().filter((i) => i.kind === "ledger")).toHaveLength(1);
    });
  });

  it("stores a staged change with the record's next write, also one that only drops done items", async () => {
    const jobId = newJobId();
    await runInDurableObject(env.JOB.getByName(jobId), (_i: JobDO, state) => {
      const store = storeOver(state.storage);
      const stored = () => state.storage.kv.get<JobState>("job");
      const s = newJobState({ jobId, projectId: "p", intent: "check git status", userId: "u", chatId: null }, 1);
      store.commit(s, [{ kind: "enqueue", attempt: 1 }]);
      const handed = store.load() as JobState;
      handed.dispatchedAttempt = 1;
      store.stage(handed);
      // Staged: the object reads it, the record does not have it.
      expect(store.peek()?.dispatchedAttempt).toBe(1);
      expect(stored()?.dispatchedAttempt).toBe(0);
      // A write that only drops done items (the pass that did an audit insert, a final job's
      // clear) stores it too: the mark and its done "enqueue" item never part on the record.
      performAll(store);
      expect(stored()?.dispatchedAttempt).toBe(0); // (no write: nothing unsafe, not final)
      store.outbox.settle(true);
      expect(stored()?.dispatchedAttempt).toBe(1);
      expect(owedOnRecord(state.storage)).toEqual([]);
    });
  });

  it("stores the commits made together() as one state write and one outbox row", async () => {
    const jobId = newJobId();
    await runInDurableObject(env.JOB.getByName(jobId), async (_i: JobDO, state) => {
      let puts = 0;
      let commits = 0;
      // The object's storage with its state writes counted.
      const kv = new Proxy(state.storage.kv, {
        get(t, prop) {
          const v = Reflect.get(t, prop);
          if (prop === "put")
            return (k: string, val: unknown) => {
              if (k === "job") puts++;
              t.put(k, val);
            };
          return typeof v === "function" ? v.bind(t) : v;
        },
      });
      const storage = new Proxy(state.storage, {
        get(t, prop) {
          if (prop === "kv") return kv;
          const v = Reflect.get(t, prop);
          return typeof v === "function" ? v.bind(t) : v;
        },
      });
      const store = storeOver(storage, () => {
        commits++;
      });
      const s = newJobState({ jobId, projectId: "p", intent: "check git status", userId: "u", chatId: "c" }, 1);
      store.commit(s);
      performAll(store);
      const before = { puts, commits };
      const rows = () => store.outbox.items().map((i) => i.kind);

      await expect(
        store.together(async () => {
          const a = store.load() as JobState;
          a.status = "QUEUED";
          store.commit(a, [{ kind: "notify" }]);
          const b = store.load() as JobState;
          expect(b.status).toBe("QUEUED"); // each commit is seen by the next read
          b.lease = { attempt: 1, agentId: "a1", leaseToken: "t", expiresAt: 42 };
          store.saveLiveness({ lease: b.lease });
          store.commit(b, [{ kind: "notify" }, { kind: "archive_log" }]);
          // Nothing is stored until together() ends.
          expect({ puts, commits }).toEqual(before);
          expect(rows()).toEqual([]);
          throw new Error("a later frame fails");
        }),
      ).rejects.toThrow("a later frame fails");
      // What was committed before the failure is stored, once: ledger and notify coalesced.
      expect(puts - before.puts).toBe(1);
      expect(commits - before.commits).toBe(1);
      expect(rows()).toEqual(["ledger", "notify", "archive_log"]);
      // … and they rode on that one write, in one batch.
      expect(owedOnRecord(state.storage)).toEqual([["ledger", "notify", "archive_log"]]);
      const stored = state.storage.kv.get<JobState>("job");
      expect(stored?.status).toBe("QUEUED");
      expect(stored?.lease?.agentId).toBe("a1");
    });
  });

  it("stores an agent's batch of frames once: none of its intermediate states is written", async () => {
    const { agent, agentId, jobId, offer } = await offered("together", "together");
    const stub = jobStubOf(jobId);
    // The status of each state write from here on (the object's own kv, observed in place).
    const written: string[] = [];
    await runInDurableObject(stub, (i: JobDO) => {
      const kv = insides(i).ctx.storage.kv;
      const real = kv.put.bind(kv);
      kv.put = (key: string, value: unknown) => {
        if (key === "job") written.push((value as JobState).status);
        real(key, value);
      };
    });
    const fence = { jobId, attempt: offer.attempt, leaseToken: offer.leaseToken };
    const stepId = offer.spec.steps[0]?.id ?? "";
    const at = new Date().toISOString();
    const result = await stub.agentBatch(agentId, [
      { type: "job_accept", ...fence },
      { type: "step_started", ...fence, stepId, startedAt: at },
      { type: "log", ...fence, stepId, seq: 0, stream: "stdout", data: "clean\n" },
      { type: "step_finished", ...fence, stepId, outcome: "succeeded", exitCode: 0, durationMs: 3 },
      {
        type: "job_finished",
        ...fence,
        status: "SUCCEEDED",
        result: {
          jobId,
          attempt: offer.attempt,
          status: "SUCCEEDED",
          steps: [{ stepId, action: "git_status", outcome: "succeeded", exitCode: 0 }],
          artifacts: [],
        },
      },
    ]);
    expect(result).toEqual({ ok: true, value: 5 });
    // Five frames, one write of their outcome (the answer's own commit may follow from the drain).
    expect(written[0]).toBe("SUCCEEDED");
    expect(written.filter((s) => s !== "SUCCEEDED")).toEqual([]);
    expect((await stub.get())?.steps.map((s) => s.state)).toEqual(["succeeded"]);
    agent.close();
  });
});

describe("an object from before effects and logs rode on the record", () => {
  it("takes its outbox's batch rows onto the record at the next write, and keeps reading its log table", async () => {
    const jobId = newJobId();
    await runInDurableObject(env.JOB.getByName(jobId), (_i: JobDO, state) => {
      const sql = state.storage.sql;
      // As the earlier code left it: the bare state under "job", a batch row, a log row.
      const s = newJobState({ jobId, projectId: "p", intent: "check git status", userId: "u", chatId: null }, 1);
      state.storage.kv.put("job", s);
      sql.exec(`CREATE TABLE outbox (
        id INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL DEFAULT 0, lane TEXT, parked_at INTEGER,
        reported INTEGER NOT NULL DEFAULT 0, last_error TEXT)`);
      sql.exec(
        "INSERT INTO outbox (id, kind, payload) VALUES (1024, 'ledger,enqueue', ?)",
        '[null,{"kind":"ledger"},{"kind":"enqueue","attempt":1}]',
      );
      sql.exec(`CREATE TABLE log_chunks (
        attempt INTEGER NOT NULL, seq INTEGER NOT NULL, step_id TEXT, stream TEXT NOT NULL,
        data TEXT NOT NULL, bytes INTEGER NOT NULL, first_seq INTEGER, PRIMARY KEY (attempt, seq)) WITHOUT ROWID`);
      sql.exec("INSERT INTO log_chunks VALUES (1, 0, 's1', 'stdout', 'old\n', 4, NULL)");
      const store = storeOver(state.storage);
      expect(store.outbox.items().map((i) => i.kind)).toEqual(["ledger", "enqueue"]);
      expect([...store.logs.chunks()].join("")).toBe("old\n");
      store.logs.append({ attempt: 1, seq: 1, stepId: "s1", stream: "stdout", data: "new\n" });
      const next = store.load() as JobState;
      next.status = "QUEUED";
      store.commit(next, [{ kind: "archive_log" }]);
      // The batch row is now on the record (and gone from the table, in the same write); the
      // commit's ledger snapshot coalesced into the one still owed.
      expect(sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox").one().n).toBe(0);
      expect(owedOnRecord(state.storage)).toEqual([["ledger", "enqueue"], ["archive_log"]]);
      // The log stays in its table: the record carries none.
      expect(state.storage.kv.get<{ log?: unknown }>("job")?.log).toBeUndefined();
      const again = storeOver(state.storage);
      expect([...again.logs.chunks()].join("")).toBe("old\nnew\n");
      expect(again.outbox.items().map((i) => i.kind)).toEqual(["ledger", "enqueue", "archive_log"]);
    });
  });
});
