// The outbox cannot wedge: jittered backoff, parking after MAX_OUTBOX_TRIES failures (alert,
// /metrics, replay by the owner), and lanes — a failing ledger write holds back later ledger
// writes of the same job (order kept) but not its archive upload.
import { env, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { LEDGER_LOG_MAX_BYTES } from "../src/jobs/archive-log.ts";
import { newJobState } from "../src/jobs/decisions.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import { backoffMs, MAX_OUTBOX_TRIES } from "../src/jobs/outbox-items.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { archivedWhere } from "./helpers/archived-log.ts";
import { insides, owedOnRecord, performAll, storeOver } from "./helpers/job-insides.ts";
import { api, JOB_EVENTS, json } from "./helpers/worker.ts";

const TRIGGER = "test_fail_event_insert";

/** Makes D1 refuse the write that appends event 90 to the job's row, as a failing D1 would (a real write error). */
async function failEventsOf(jobId: string): Promise<void> {
  await env.DB.exec(
    `CREATE TRIGGER IF NOT EXISTS ${TRIGGER} BEFORE UPDATE ON jobs WHEN NEW.id = '${jobId}' AND EXISTS (SELECT 1 FROM json_each(NEW.events) WHERE json_extract(value, '$.seq') = 90) BEGIN SELECT RAISE(ABORT, 'injected failure'); END`,
  );
}
afterEach(async () => {
  await env.DB.exec(`DROP TRIGGER IF EXISTS ${TRIGGER}`);
});

async function newJob(): Promise<{ jobId: string; stub: DurableObjectStub<JobDO> }> {
  const jobId = newJobId();
  const stub = env.JOB.get(env.JOB.idFromName(jobId)) as DurableObjectStub<JobDO>;
  await stub.create({ jobId, projectId: "default", intent: "check git status", userId: "api", chatId: null });
  // A final job: no planning alarm adds items while the test drives the outbox.
  await stub.cancel({ id: "api", isAdmin: true });
  for (let n = 0; n < 100 && (await outboxRows(stub)).length > 0; n++) await scheduler.wait(20);
  expect(await outboxRows(stub)).toEqual([]);
  return { jobId, stub };
}

/** The items the job's outbox owes, in order (on its state record and in the rows of failed ones). */
const outboxRows = (stub: DurableObjectStub<JobDO>) =>
  runInDurableObject(stub, (i: JobDO) => insides(i).outbox.items());

/** Queues a (failing) event, then a ledger snapshot and an archive upload behind it. */
async function queueEventThenOthers(stub: DurableObjectStub<JobDO>): Promise<void> {
  await runInDurableObject(stub, async (i: JobDO) => {
    insides(i).ctx.storage.transactionSync(() => {
      insides(i).outbox.add({
        kind: "event",
        seq: 90,
        fromStatus: "CREATED",
        toStatus: "CREATED",
        event: "note",
        detail: null,
        at: Date.now(),
      });
      insides(i).outbox.add({ kind: "ledger" });
      insides(i).outbox.add({ kind: "archive_log" });
    });
    await insides(i).drain();
  });
}

/** Runs the retries now instead of waiting out the backoff. */
async function retryNow(stub: DurableObjectStub<JobDO>): Promise<void> {
  await runInDurableObject(stub, async (i: JobDO) => {
    insides(i).ctx.storage.sql.exec("UPDATE outbox SET next_at = 0 WHERE parked_at IS NULL");
    await insides(i).drain();
  });
}

describe("outbox backoff", () => {
  it("doubles per try, caps at five minutes and jitters each delay to 50–100 %", () => {
    expect(backoffMs(0, () => 1)).toBe(1000);
    expect(backoffMs(3, () => 1)).toBe(8000);
    expect(backoffMs(3, () => 0)).toBe(4000);
    expect(backoffMs(20, () => 1)).toBe(300_000);
    const spread = new Set(Array.from({ length: 20 }, () => backoffMs(4)));
    expect(spread.size).toBeGreaterThan(1);
    for (const d of spread) expect(d >= 8000 && d <= 16_000).toBe(true);
  });
});

describe("outbox lanes and parking", () => {
  it("keeps the ledger in order behind a failing write, without holding back the archive", async () => {
    const { jobId, stub } = await newJob();
    await failEventsOf(jobId);
    await queueEventThenOthers(stub);
    const rows = await outboxRows(stub);
    // The archive upload (another lane) went through; the ledger snapshot waits behind the event.
    expect(rows.map((r) => r.kind)).toEqual(["event", "ledger"]);
    expect(rows[0]?.tries).toBe(1);
    expect(await archivedWhere(jobId)).toBe("ledger"); // an empty log: on its row
    // A drain before the backoff has passed does not run the snapshot ahead of the event.
    await runInDurableObject(stub, (i: JobDO) => insides(i).drain());
    expect((await outboxRows(stub)).map((r) => r.kind)).toEqual(["event", "ledger"]);
  });

  it("does not hold back the ledger behind a failing archive upload", async () => {
    const { jobId, stub } = await newJob();
    await runInDurableObject(stub, async (i: JobDO) => {
      // R2 refusing every put (fault injection on this object's binding only).
      const failing = new Proxy(insides(i).env.ARCHIVE, {
        get(target, prop) {
          if (prop === "put")
            return () => {
              const refused = Promise.reject(new Error("injected R2 failure"));
              refused.catch(() => undefined); // awaited by putLogInR2 after its writes
              return refused;
            };
          const value = Reflect.get(target, prop);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      Object.defineProperty(i, "env", { value: { ...insides(i).env, ARCHIVE: failing }, configurable: true });
      // Too long for the ledger row: the archive is an R2 put.
      const data = "x".repeat(LEDGER_LOG_MAX_BYTES + 1);
      insides(i).logs.append({ attempt: 1, seq: 0, stepId: "s1", stream: "stdout", data });
      insides(i).ctx.storage.transactionSync(() => {
        insides(i).outbox.add({ kind: "archive_log" });
        insides(i).outbox.add({
          kind: "event",
          seq: 91,
          fromStatus: "CANCELLED",
          toStatus: "CANCELLED",
          event: "note",
          detail: null,
          at: Date.now(),
        });
      });
      await insides(i).drain();
    });
    const rows = await outboxRows(stub);
    expect(rows.map((r) => [r.kind, r.tries])).toEqual([["archive_log", 1]]);
    expect(
      await env.DB.prepare(`SELECT 1 AS ok FROM ${JOB_EVENTS} WHERE job_id = ? AND seq = 91`).bind(jobId).first(),
    ).toEqual({ ok: 1 });
  });

  it("parks an item after MAX_OUTBOX_TRIES failures, alerts, counts it, and lets the lane go on", async () => {
    const { jobId, stub } = await newJob();
    const before = await env.DB.prepare("SELECT value FROM counters WHERE name = 'outbox_parked'").first<{
      value: number;
    }>();
    await failEventsOf(jobId);
    await queueEventThenOthers(stub);
    for (let n = 1; n < MAX_OUTBOX_TRIES - 1; n++) await retryNow(stub);
    let rows = await outboxRows(stub);
    expect(rows[0]).toMatchObject({ kind: "event", tries: MAX_OUTBOX_TRIES - 1, parked: false });
    expect(rows.map((r) => r.kind)).toEqual(["event", "ledger"]);
    await retryNow(stub);
    rows = await outboxRows(stub);
    // Parked: kept, and the ledger snapshot behind it has been written.
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ kind: "event", tries: MAX_OUTBOX_TRIES });
    expect(rows[0]?.parked).toBe(true);
    const alert = await env.DB.prepare("SELECT active, message FROM alerts WHERE key = ?")
      .bind(`outbox_parked:${jobId}`)
      .first<{ active: number; message: string }>();
    expect(alert?.active).toBe(1);
    expect(alert?.message).toContain("injected failure");
    const after = await env.DB.prepare("SELECT value FROM counters WHERE name = 'outbox_parked'").first<{
      value: number;
    }>();
    expect((after?.value ?? 0) - (before?.value ?? 0)).toBe(1);
    const metrics = await (await api("/metrics")).text();
    expect(metrics).toMatch(new RegExp(`skynet_outbox_parked_total ${after?.value}\\n`));
    // A parked item holds no alarm: nothing retries it until someone replays it.
    const retriesLeft = await runInDurableObject(stub, (i: JobDO) => insides(i).outbox.nextAt());
    expect(retriesLeft).toBeNull();
  });

  it("replays parked items through POST /api/jobs/:id/outbox/replay once the cause is gone", async () => {
    const { jobId, stub } = await newJob();
    await failEventsOf(jobId);
    await queueEventThenOthers(stub);
    for (let n = 1; n < MAX_OUTBOX_TRIES; n++) await retryNow(stub);
    expect((await outboxRows(stub))[0]?.parked).toBe(true);
    expect((await api(`/api/jobs/${jobId}/outbox/replay`, { method: "POST", token: "wrong" })).status).toBe(401);
    expect(
      await env.DB.prepare(`SELECT 1 FROM ${JOB_EVENTS} WHERE job_id = ? AND seq = 90`).bind(jobId).first(),
    ).toBeNull();
    await env.DB.exec(`DROP TRIGGER IF EXISTS ${TRIGGER}`);
    const res = await api(`/api/jobs/${jobId}/outbox/replay`, { method: "POST" });
    expect(res.status).toBe(200);
    const body = await json<{ replayed: { kind: string; tries: number; error: string }[] }>(res);
    expect(body.replayed).toHaveLength(1);
    expect(body.replayed[0]).toMatchObject({ kind: "event", tries: MAX_OUTBOX_TRIES });
    expect(body.replayed[0]?.error).toContain("injected failure");
    expect(await outboxRows(stub)).toHaveLength(0);
    expect(
      await env.DB.prepare(`SELECT 1 AS ok FROM ${JOB_EVENTS} WHERE job_id = ? AND seq = 90`).bind(jobId).first(),
    ).toEqual({ ok: 1 });
    // Nothing parked: an empty replay; an unknown job: 404.
    expect(await json(await api(`/api/jobs/${jobId}/outbox/replay`, { method: "POST" }))).toMatchObject({
      replayed: [],
    });
    expect((await api(`/api/jobs/${newJobId()}/outbox/replay`, { method: "POST" })).status).toBe(404);
  });
});

const note = (seq: number) => ({
  kind: "event" as const,
  seq,
  fromStatus: "CANCELLED",
  toStatus: "CANCELLED",
  event: "note",
  detail: null,
  at: Date.now(),
});
const eventLanded = async (jobId: string, seq: number) =>
  (await env.DB.prepare(`SELECT 1 AS ok FROM ${JOB_EVENTS} WHERE job_id = ? AND seq = ?`).bind(jobId, seq).first()) !==
  null;

const tables = (stub: DurableObjectStub<JobDO>) =>
  runInDurableObject(stub, (i: JobDO) =>
    insides(i)
      .ctx.storage.sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'outbox'")
      .toArray(),
  );

describe("a commit's effects ride on its state write", () => {
  it("stores them in the state record, with no outbox row; a final job's record is cleared once they are done", async () => {
    const { jobId, stub } = await newJob();
    const owed = await runInDurableObject(stub, (i: JobDO) => {
      const state = insides(i).load();
      if (!state) throw new Error("no job");
      insides(i).commit(state, [note(92), note(93), { kind: "archive_log" }]);
      // Read before the drain the commit started has run (nothing awaited yet).
      return owedOnRecord(insides(i).ctx.storage);
    });
    expect(owed).toEqual([["event", "event", "archive_log"]]);
    expect(await tables(stub)).toEqual([]);
    await runInDurableObject(stub, (i: JobDO) => insides(i).afterChange());
    expect(await outboxRows(stub)).toEqual([]);
    // No commit follows a final job's: the record is written once more, without the done items.
    expect(await runInDurableObject(stub, (i: JobDO) => owedOnRecord(insides(i).ctx.storage))).toEqual([]);
    expect(await tables(stub)).toEqual([]);
    expect(await eventLanded(jobId, 92)).toBe(true);
    expect(await eventLanded(jobId, 93)).toBe(true);
    expect(await archivedWhere(jobId)).toBe("ledger"); // an empty log: on its row
  });

  it("moves a failing item into a row of its own, ahead of later commits' items of its lane", async () => {
    const { jobId, stub } = await newJob();
    await failEventsOf(jobId);
    await runInDurableObject(stub, async (i: JobDO) => {
      insides(i).outbox.addAll([note(90), { kind: "archive_log" }]);
      insides(i).outbox.addAll([note(91)]);
      await insides(i).drain();
    });
    // The failing event has its own row (its tries counted); the archive upload went; the later
    // commit's event waits behind it, in its row.
    let rows = await outboxRows(stub);
    expect(rows.map((r) => [r.kind, r.tries])).toEqual([
      ["event", 1],
      ["event", 0],
    ]);
    // The failed item is in a row of its own now, and off the record (never in both).
    expect(await tables(stub)).toEqual([{ name: "outbox" }]);
    expect(await runInDurableObject(stub, (i: JobDO) => owedOnRecord(insides(i).ctx.storage))).toEqual([["event"]]);
    expect(await archivedWhere(jobId)).toBe("ledger"); // an empty log: on its row
    // A drain before the backoff has passed still keeps seq 91 behind seq 90.
    await runInDurableObject(stub, (i: JobDO) => insides(i).drain());
    expect(await eventLanded(jobId, 91)).toBe(false);
    await env.DB.exec(`DROP TRIGGER IF EXISTS ${TRIGGER}`);
    await retryNow(stub);
    rows = await outboxRows(stub);
    expect(rows).toEqual([]);
    expect(await eventLanded(jobId, 90)).toBe(true);
    expect(await eventLanded(jobId, 91)).toBe(true);
  });
});

describe("done items on the state record", () => {
  it("stay on the record until its next write (a restart performs them again); an audit insert is cleared at once", async () => {
    const jobId = newJobId();
    await runInDurableObject(env.JOB.getByName(jobId), (_i: JobDO, state) => {
      const store = storeOver(state.storage);
      const s = newJobState({ jobId, projectId: "p", intent: "check git status", userId: "u", chatId: null }, 1);
      store.commit(s, [{ kind: "enqueue", attempt: 1 }]);
      expect(owedOnRecord(state.storage)).toEqual([["ledger", "enqueue"]]);
      let puts = 0;
      const put = state.storage.kv.put.bind(state.storage.kv);
      state.storage.kv.put = (key: string, value: unknown) => {
        if (key === "job") puts++;
        put(key, value);
      };
      // Performed: nothing is written for it (both are safe to perform again) …
      performAll(store);
      expect(puts).toBe(0);
      expect(store.outbox.items()).toEqual([]);
      // … so a restart finds them owed still, and would perform them again.
      expect(
        storeOver(state.storage)
          .outbox.items()
          .map((i) => i.kind),
      ).toEqual(["ledger", "enqueue"]);
      // The next commit's write drops them.
      const next = store.load();
      if (!next) throw new Error("no job");
      next.status = "QUEUED";
      store.commit(next, [{ kind: "archive_log" }]);
      expect(owedOnRecord(state.storage)).toEqual([["ledger", "archive_log"]]);
      performAll(store);
      // An audit row has no key to make a second insert harmless: once done, the record is cleared.
      const audited = store.load();
      if (!audited) throw new Error("no job");
      store.commit(audited, [{ kind: "audit", actor: "u", action: "approve", detail: {}, at: 1 }]);
      expect(owedOnRecord(state.storage)).toEqual([["audit"]]);
      const before = puts;
      performAll(store);
      expect(puts - before).toBe(1);
      expect(owedOnRecord(state.storage)).toEqual([]);
      expect(storeOver(state.storage).outbox.size()).toBe(0);
    });
  });
});
