// A final job's Durable Object storage is deleted by its own alarm once it is past retention
// and owes nothing (ledger written, log archived, nothing parked); its ledger row, events and
// archived log (on the row when small, else in R2) remain the record, and reading the job afterwards does not bring storage back.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { JobDO } from "../src/jobs/job-do.ts";
import type { JobState } from "../src/jobs/job-state.ts";
import { MAX_OUTBOX_TRIES } from "../src/jobs/outbox-items.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { archivedWhere } from "./helpers/archived-log.ts";
import { insides } from "./helpers/job-insides.ts";
import { api } from "./helpers/worker.ts";

const DAY = 86_400_000;

async function finishedJob(): Promise<{ jobId: string; stub: DurableObjectStub<JobDO> }> {
  const jobId = newJobId();
  const stub = env.JOB.get(env.JOB.idFromName(jobId)) as DurableObjectStub<JobDO>;
  await stub.create({ jobId, projectId: "default", intent: "check git status", userId: "api", chatId: null });
  await stub.cancel({ id: "api", isAdmin: true });
  for (let n = 0; n < 100; n++) {
    if ((await runInDurableObject(stub, (i: JobDO) => insides(i).outbox.size())) === 0) break;
    await scheduler.wait(20);
  }
  return { jobId, stub };
}

/** Moves the job's end back in time, as if `days` had passed since. */
async function endedDaysAgo(stub: DurableObjectStub<JobDO>, days: number): Promise<void> {
  await runInDurableObject(stub, (i: JobDO) => {
    const s = insides(i).load() as JobState;
    s.finishedAt = Date.now() - days * DAY;
    insides(i).save(s);
  });
}

/** What the object stores: its key-value entries and its SQL tables (the runtime's own excluded). */
const storageOf = (stub: DurableObjectStub<JobDO>) =>
  runInDurableObject(stub, async (i: JobDO) => ({
    keys: [...insides(i).ctx.storage.kv.list()].map(([k]) => k),
    tables: insides(i)
      .ctx.storage.sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
      .toArray()
      .map((r) => r.name)
      .filter((n) => !n.startsWith("_cf_") && !n.startsWith("sqlite_")),
    alarm: await insides(i).ctx.storage.getAlarm(),
  }));

describe("job storage lifecycle", () => {
  it("arms the job's alarm for the end of retention once it is final", async () => {
    const { stub } = await finishedJob();
    await runDurableObjectAlarm(stub); // the planning alarm set at creation fires and re-arms
    const { finishedAt, alarm } = await runInDurableObject(stub, async (i: JobDO) => ({
      finishedAt: insides(i).load()?.finishedAt ?? 0,
      alarm: await insides(i).ctx.storage.getAlarm(),
    }));
    // JOB_STATE_RETENTION_DAYS defaults to 7 (below LOG_RETENTION_DAYS).
    expect(alarm).toBe(finishedAt + 7 * DAY);
  });

  it("deletes all of a final job's storage past retention; the ledger and archive remain", async () => {
    const { jobId, stub } = await finishedJob();
    const before = await storageOf(stub);
    expect(before.keys).toContain("job");
    // A small job's effects and log ride on its state record: it has no table at all.
    expect(before.tables).toEqual([]);
    await endedDaysAgo(stub, 6);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect((await storageOf(stub)).keys).toContain("job"); // not yet
    await endedDaysAgo(stub, 8);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await storageOf(stub)).toEqual({ keys: [], tables: [], alarm: null });
    const row = await env.DB.prepare("SELECT status FROM jobs WHERE id = ?").bind(jobId).first<{ status: string }>();
    expect(row?.status).toBe("CANCELLED");
    expect(await archivedWhere(jobId)).toBe("ledger"); // its (empty) log, on the row
    // Reading the job afterwards tells the truth and writes nothing back.
    const res = await api(`/api/jobs/${jobId}`);
    expect(res.status).toBe(404);
    expect(await res.text()).toContain("retention");
    expect(await stub.opCounts()).toEqual({});
    expect(await storageOf(stub)).toEqual({ keys: [], tables: [], alarm: null });
  });

  it("keeps the storage of a job that still owes a side effect (a parked item)", async () => {
    const { stub } = await finishedJob();
    await runInDurableObject(stub, (i: JobDO) => {
      const outbox = insides(i).outbox;
      outbox.add({ kind: "archive_log" });
      // Its last allowed failure: parked (and reported), as a drain would leave it.
      const [row] = outbox.due(Date.now());
      if (!row) throw new Error("nothing due");
      expect(outbox.failed({ ...row, tries: MAX_OUTBOX_TRIES - 1 }, Date.now(), "injected")).toBe("parked");
      outbox.reportedNow(outbox.parked().map((p) => p.id));
      outbox.settle(true);
    });
    await endedDaysAgo(stub, 30);
    await runInDurableObject(stub, async (i: JobDO) => {
      await insides(i).ctx.storage.setAlarm(Date.now());
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const after = await storageOf(stub);
    expect(after.keys).toContain("job");
    expect(after.tables).toContain("outbox");
    // Nothing to do until a replay: no alarm spinning on the overdue purge.
    expect(after.alarm).toBeNull();
  });
});
