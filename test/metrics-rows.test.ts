// The D1 rows a job's metric counters write (issue 18, cost per job): a histogram measurement
// writes one row (its bucket, carrying its share of the sum), and migration 0011 moved each
// stored sum onto a bucket row without changing any figure /metrics shows.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { eventQueries, type LedgerQuery } from "../src/jobs/effects.ts";
import { getDb, readCounters } from "../src/ledger/store.ts";
import { newJobId } from "../src/lib/crypto.ts";

const histRows = async () =>
  (
    await env.DB.prepare("SELECT name, value, sum_ms FROM counters WHERE name LIKE 'hist:%' ORDER BY name").all<{
      name: string;
      value: number;
      sum_ms: number;
    }>()
  ).results;

describe("histogram counters", () => {
  it("write one row per measurement, the sum on the bucket row, read back as the histogram's sum", async () => {
    await env.DB.exec("DELETE FROM counters");
    const db = getDb(env.DB);
    const jobId = newJobId();
    const start = {
      kind: "event" as const,
      seq: 4,
      fromStatus: "QUEUED",
      toStatus: "RUNNING",
      event: "start",
      detail: null,
      at: 1_000,
      measure: { histogram: "dispatch" as const, ms: 70 },
    };
    const end = {
      ...start,
      seq: 5,
      fromStatus: "RUNNING",
      toStatus: "SUCCEEDED",
      event: "succeed",
      measure: { histogram: "duration" as const, ms: 2_000 },
    };
    await db.batch(eventQueries(db, jobId, [start]) as [LedgerQuery, ...LedgerQuery[]]);
    // A second job's two measurements in one statement: the sums add up on the bucket rows.
    const other = newJobId();
    await db.batch(eventQueries(db, other, [start, end]) as [LedgerQuery, ...LedgerQuery[]]);
    expect(await histRows()).toEqual([
      { name: "hist:dispatch:le:0.1", value: 2, sum_ms: 140 },
      { name: "hist:duration:le:2.5", value: 1, sum_ms: 2_000 },
    ]);
    const c = await readCounters(db);
    expect(c["hist:dispatch:sum_ms"]).toBe(140);
    expect(c["hist:duration:sum_ms"]).toBe(2_000);
    // A retried write adds nothing.
    await db.batch(eventQueries(db, other, [start, end]) as [LedgerQuery, ...LedgerQuery[]]);
    expect((await readCounters(db))["hist:dispatch:sum_ms"]).toBe(140);
  });

  it("migration 0011 moved each stored sum onto a bucket row, figures unchanged", async () => {
    await env.DB.exec("DELETE FROM counters");
    // Counters as they were stored before 0011: a sum row beside the bucket rows.
    await env.DB.batch([
      env.DB.prepare("INSERT INTO counters (name, value) VALUES ('hist:dispatch:le:0.1', 3)"),
      env.DB.prepare("INSERT INTO counters (name, value) VALUES ('hist:dispatch:le:+Inf', 1)"),
      env.DB.prepare("INSERT INTO counters (name, value) VALUES ('hist:dispatch:sum_ms', 91000)"),
      env.DB.prepare("INSERT INTO counters (name, value) VALUES ('hist:duration:le:1', 2)"),
      env.DB.prepare("INSERT INTO counters (name, value) VALUES ('hist:duration:sum_ms', 1500)"),
      env.DB.prepare("INSERT INTO counters (name, value) VALUES ('jobs_status:SUCCEEDED', 2)"),
    ]);
    const migration = env.TEST_MIGRATIONS.find((m) => m.name.startsWith("0011_"));
    // Its data statements (the column and the index exist already here).
    const data = (migration?.queries ?? []).filter((q) => /^\s*(INSERT|DELETE)/i.test(q.replace(/^\s*--.*$/gm, "")));
    expect(data).toHaveLength(2);
    for (const q of data) await env.DB.prepare(q).run();
    expect(await readCounters(getDb(env.DB))).toEqual({
      "hist:dispatch:le:0.1": 3,
      "hist:dispatch:le:+Inf": 1,
      "hist:dispatch:sum_ms": 91000,
      "hist:duration:le:1": 2,
      "hist:duration:le:+Inf": 0,
      "hist:duration:sum_ms": 1500,
      "jobs_status:SUCCEEDED": 2,
    });
    expect((await histRows()).map((r) => r.name)).not.toContain("hist:dispatch:sum_ms");
  });
});
