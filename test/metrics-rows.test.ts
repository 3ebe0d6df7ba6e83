// The D1 rows a job's ledger writes cost (issue 18, cost per job): its events ride on its row
// and the counters they move sit in one JSON row (job_metrics), so a commit writes the job's row
// once and the metrics row once, however many events and counters; a replay counts nothing; and
// migration 0012 carried the old tables' contents over without changing a figure.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { eventJson } from "../src/ledger/job-events.ts";
import { metricsQuery } from "../src/ledger/metrics-query.ts";
import { appendJobEventsQuery, getDb, listJobEvents, readCounters, undatedCountersQuery } from "../src/ledger/store.ts";
import { newJobId } from "../src/lib/crypto.ts";

const start: {
  seq: number;
  fromStatus: string;
  toStatus: string;
  event: string;
  at: number;
  measure: { histogram: "dispatch" | "duration"; ms: number };
} = {
  seq: 4,
  fromStatus: "QUEUED",
  toStatus: "RUNNING",
  event: "start",
  at: 1_000,
  measure: { histogram: "dispatch", ms: 70 },
};
const end = {
  ...start,
  seq: 5,
  fromStatus: "RUNNING",
  toStatus: "SUCCEEDED",
  event: "succeed",
  at: 3_000,
  measure: { histogram: "duration" as const, ms: 2_000 },
};
type Counted = Omit<typeof start, "measure"> & { measure: { histogram: "dispatch" | "duration"; ms: number } };

const row = (id: string) => ({
  id,
  projectId: "default",
  userId: "api",
  intent: "x",
  status: "RUNNING",
  createdAt: 1,
  updatedAt: 1,
});

/** The metrics statement and the append, as the drain batches them; the D1 rows each wrote. */
async function write(jobId: string, events: Counted[]): Promise<{ metrics: number; job: number }> {
  const db = getDb(env.DB);
  const metrics = metricsQuery(db, jobId, events, null);
  if (!metrics) throw new Error("these events move counters");
  const [m, j] = await db.batch([metrics, appendJobEventsQuery(db, row(jobId), events.map(eventJson))]);
  return { metrics: m.meta.rows_written, job: j.meta.rows_written };
}

const metricsData = async () =>
  JSON.parse((await env.DB.prepare("SELECT data FROM job_metrics WHERE id = 1").first<{ data: string }>())?.data ?? "");

describe("the counters /metrics reads", () => {
  it("leave out the dated families, and read no more rows as their days and minutes add up", async () => {
    const db = getDb(env.DB);
    await env.DB.prepare("INSERT INTO counters (name, value) VALUES ('test_undated', 2)").run();
    const q = undatedCountersQuery(db).toSQL();
    const rowsRead = async () =>
      (
        await env.DB.prepare(q.sql)
          .bind(...q.params)
          .all()
      ).meta.rows_read;
    const before = await rowsRead();
    const addDated = (from: number) =>
      env.DB.batch(
        Array.from({ length: 200 }, (_, i) => [
          env.DB.prepare("INSERT INTO counters (name, value) VALUES (?, 1)").bind(`tokens_day:2${from + i}:input`),
          env.DB.prepare("INSERT INTO counters (name, value) VALUES (?, 1)").bind(
            `pair_failures:198.51.100.7:${from + i}`,
          ),
        ]).flat(),
      );
    await addDated(0);
    const withSome = await rowsRead();
    await addDated(200);
    // A range reads at most the one row past its end: the count stays as days and minutes add up.
    expect(await rowsRead()).toBe(withSome);
    expect(withSome).toBeLessThanOrEqual(before + 3);
    const c = await readCounters(db);
    expect(c.test_undated).toBe(2);
    expect(Object.keys(c).filter((k) => k.startsWith("tokens_day:") || k.startsWith("pair_failures:"))).toEqual([]);
    // Their own readers still find them by prefix.
    expect(Object.keys(await readCounters(db, "tokens_day:2"))).toHaveLength(400);
    await env.DB.prepare(
      "DELETE FROM counters WHERE name = 'test_undated' OR name LIKE 'tokens_day:2%' OR name LIKE 'pair_failures:198.51.100.7:%'",
    ).run();
  });
});

describe("job metrics in one row", () => {
  it("a commit writes one metrics row and one job row, however many events and counters", async () => {
    await env.DB.exec("UPDATE job_metrics SET data = '{}'");
    const jobId = newJobId();
    await write(jobId, [start]);
    // A second job's two transitions (six counters) in one commit.
    const other = newJobId();
    const rows = await write(other, [start, end]);
    expect(rows).toEqual({ metrics: 1, job: 4 }); // the job's row (keyed by id) and its three index entries
    const c = await readCounters(getDb(env.DB));
    expect(c["hist:dispatch:le:0.1"]).toBe(2);
    expect(c["hist:dispatch:sum_ms"]).toBe(140);
    expect(c["hist:duration:le:2.5"]).toBe(1);
    expect(c["hist:duration:sum_ms"]).toBe(2_000);
    // Only the final status is kept in the row; the others are counted from the status index.
    expect(c["jobs_status:QUEUED"]).toBeUndefined();
    expect(c["jobs_status:RUNNING"]).toBeUndefined();
    expect(c["jobs_status:SUCCEEDED"]).toBe(1);
    expect((await listJobEvents(getDb(env.DB), other)).map((e) => e.seq)).toEqual([4, 5]);
  });

  it("counts a replayed event nothing, and of a partly replayed commit only the new events", async () => {
    await env.DB.exec("UPDATE job_metrics SET data = '{}'");
    const jobId = newJobId();
    await write(jobId, [start]);
    const once = await metricsData();
    // The same commit again (a batch whose answer was lost): nothing counted, no event added.
    await write(jobId, [start]);
    expect(await metricsData()).toEqual(once);
    // An event twice in one commit (a replayed item beside the original): counted and kept once.
    const twice = newJobId();
    await write(twice, [start, start]);
    expect((await listJobEvents(getDb(env.DB), twice)).map((e) => e.seq)).toEqual([4]);
    expect((await metricsData())["hist:dispatch:le:0.1"]).toBe(once["hist:dispatch:le:0.1"] + 1);
    await env.DB.prepare("UPDATE job_metrics SET data = ? WHERE id = 1").bind(JSON.stringify(once)).run();
    // The old event with a new one: only the new one counts, and is appended once.
    await write(jobId, [start, end]);
    expect(await metricsData()).toEqual({
      ...once,
      "jobs_status:SUCCEEDED": 1,
      "hist:duration:le:2.5": 1,
      "hist:duration:sum_ms": 2_000,
    });
    expect((await listJobEvents(getDb(env.DB), jobId)).map((e) => e.seq)).toEqual([4, 5]);
  });

  it("migration 0012 moved events onto their jobs' rows and counters into one row, figures unchanged", async () => {
    // The tables as they were before 0012.
    await env.DB.batch([
      env.DB.prepare(
        "CREATE TABLE job_events (job_id text NOT NULL, seq integer NOT NULL, from_status text, to_status text NOT NULL, event text NOT NULL, detail text, at integer NOT NULL, PRIMARY KEY (job_id, seq)) WITHOUT ROWID",
      ),
      env.DB.prepare("ALTER TABLE counters ADD COLUMN sum_ms integer NOT NULL DEFAULT 0"),
      env.DB.prepare("DELETE FROM job_metrics"),
    ]);
    const jobId = newJobId();
    await env.DB.batch([
      env.DB.prepare(
        "INSERT INTO jobs (id, project_id, user_id, intent, status, created_at, updated_at) VALUES (?, 'default', 'api', 'x', 'SUCCEEDED', 1, 9)",
      ).bind(jobId),
      env.DB.prepare(
        "INSERT INTO job_events VALUES (?, 2, 'CREATED', 'QUEUED', 'approve', NULL, 5), (?, 1, NULL, 'CREATED', 'create', '{\"by\":\"api\"}', 1)",
      ).bind(jobId, jobId),
      env.DB.prepare(
        "INSERT INTO counters (name, value, sum_ms) VALUES ('hist:dispatch:le:0.1', 3, 200), ('hist:dispatch:le:+Inf', 1, 90800), ('hist:duration:le:1', 2, 1500), ('jobs_status:SUCCEEDED', 2, 0), ('events:requeue', 4, 0), ('queue_retries', 7, 0)",
      ),
    ]);
    const migration = env.TEST_MIGRATIONS.find((m) => m.name.startsWith("0012_"));
    // Its statements but those creating what exists here already (the column, the table).
    const data = (migration?.queries ?? []).filter(
      (q) => !/^\s*(ALTER TABLE `jobs`|CREATE TABLE)/i.test(q.replace(/^\s*--.*$/gm, "")),
    );
    expect(data.length).toBeGreaterThanOrEqual(5);
    for (const q of data) await env.DB.prepare(q).run();
    expect(await listJobEvents(getDb(env.DB), jobId)).toEqual([
      { jobId, seq: 1, fromStatus: null, toStatus: "CREATED", event: "create", detail: '{"by":"api"}', at: 1 },
      { jobId, seq: 2, fromStatus: "CREATED", toStatus: "QUEUED", event: "approve", detail: null, at: 5 },
    ]);
    expect(await readCounters(getDb(env.DB))).toMatchObject({
      "hist:dispatch:le:0.1": 3,
      "hist:dispatch:le:+Inf": 1,
      "hist:dispatch:sum_ms": 91000,
      "hist:duration:le:1": 2,
      "hist:duration:sum_ms": 1500,
      "jobs_status:SUCCEEDED": 2,
      "events:requeue": 4,
      queue_retries: 7,
    });
    const left = await env.DB.prepare(
      "SELECT name FROM counters WHERE name GLOB 'hist:*' OR name GLOB 'jobs_status:*'",
    ).all();
    expect(left.results).toEqual([]);
    const tables = await env.DB.prepare("SELECT name FROM sqlite_master WHERE name = 'job_events'").all();
    expect(tables.results).toEqual([]);
  });
});
