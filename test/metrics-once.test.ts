// job_metrics written once per job, at its end (issue 18, cost per job): the metrics row keeps
// only what grows with history (final statuses, histograms, re-dispatches), so a commit with no
// final transition and no measurement writes no metrics row; the jobs in a status they leave
// again are counted when /metrics is read, from the active entries of the status index only.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { JobStatusSchema } from "../protocol/index.ts";
import { newJobState } from "../src/jobs/decisions.ts";
import { ledgerWrites } from "../src/jobs/effects.ts";
import type { JobState } from "../src/jobs/job-state.ts";
import type { OutboxItem } from "../src/jobs/outbox-items.ts";
import { ACTIVE_STATUSES, activeStatusCountsSql } from "../src/ledger/metric-counters.ts";
import { getDb, upsertJobQuery } from "../src/ledger/store.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { api } from "./helpers/worker.ts";

type EventItem = Extract<OutboxItem, { kind: "event" }>;

/** A job's commits as the drain batches them: per commit, the D1 rows its statements wrote. */
function jobWriter() {
  const memo = new Map<string, unknown>();
  const job = {
    memo: <T>(k: string) => memo.get(k) as T | undefined,
    setMemo: (k: string, v: unknown) => memo.set(k, v),
  };
  const jobId = newJobId();
  const state: JobState = newJobState(
    { jobId, projectId: "once", intent: "check git status", userId: "api", chatId: null },
    1_000,
  );
  let seq = 0;
  return {
    jobId,
    async commit(moves: [string, string, EventItem["measure"]?][]) {
      const items: OutboxItem[] = [{ kind: "ledger" }];
      for (const [event, to, measure] of moves) {
        seq += 1;
        items.push({
          kind: "event",
          seq,
          fromStatus: seq === 1 ? null : state.status,
          toStatus: to,
          event,
          detail: null,
          at: 1_000 + seq,
          measure: measure ?? null,
        });
        state.status = to as JobState["status"];
      }
      state.updatedAt = 1_000 + seq;
      const db = getDb(env.DB);
      const w = ledgerWrites(job, db, state, items);
      const metricsStatements = w.queries.filter((q) => q.toSQL().sql.includes('"job_metrics"')).length;
      const results = await db.batch(w.queries as [(typeof w.queries)[number], ...typeof w.queries]);
      w.done?.();
      return { metricsStatements, rowsWritten: results.reduce((n, r) => n + r.meta.rows_written, 0) };
    },
  };
}

const metricsData = async () =>
  (await env.DB.prepare("SELECT data FROM job_metrics WHERE id = 1").first<{ data: string }>())?.data;

describe("job metrics once per job", () => {
  it("writes no metrics row until a final transition or a measurement", async () => {
    const before = await metricsData();
    const job = jobWriter();
    expect(await job.commit([["create", "CREATED"]])).toEqual({ metricsStatements: 0, rowsWritten: 4 });
    expect(
      await job.commit([
        ["plan_ready", "PLANNED"],
        ["approve", "QUEUED"],
      ]),
    ).toEqual({
      metricsStatements: 0,
      rowsWritten: 2, // the row and its status index entry
    });
    expect(await metricsData()).toBe(before);
    // The usual short job: RUNNING and the end in one commit, one metrics row written.
    const end = await job.commit([
      ["start", "RUNNING", { histogram: "dispatch", ms: 70 }],
      ["succeed", "SUCCEEDED", { histogram: "duration", ms: 2_000 }],
    ]);
    expect(end).toEqual({ metricsStatements: 1, rowsWritten: 3 });
    const data = JSON.parse((await metricsData()) ?? "{}") as Record<string, number>;
    expect(Object.keys(data).filter((k) => k.startsWith("jobs_status:"))).toEqual(["jobs_status:SUCCEEDED"]);
  });

  it("still counts a dispatch measured in a commit of its own, and a re-dispatch", async () => {
    const job = jobWriter();
    await job.commit([
      ["create", "CREATED"],
      ["plan_ready", "PLANNED"],
      ["approve", "QUEUED"],
    ]);
    expect((await job.commit([["start", "RUNNING", { histogram: "dispatch", ms: 70 }]])).metricsStatements).toBe(1);
    expect((await job.commit([["requeue", "QUEUED"]])).metricsStatements).toBe(1);
    expect((await job.commit([["cancel", "CANCELLED"]])).metricsStatements).toBe(1);
  });
});

describe("jobs in active statuses, read at scrape time", () => {
  it("come from a range of the status index that reads the active jobs only", async () => {
    const { results: plan } = await env.DB.prepare(`EXPLAIN QUERY PLAN ${activeStatusCountsSql}`).all<{
      detail: string;
    }>();
    expect(plan.map((p) => p.detail)).toEqual(["SEARCH jobs USING COVERING INDEX jobs_status_created_idx (status=?)"]);
    const insert = env.DB.prepare(
      "INSERT INTO jobs (id, project_id, user_id, intent, status, created_at, updated_at) VALUES (?, 'once', 'api', 'x', ?, 1, 1)",
    );
    const read = async () => (await env.DB.prepare(activeStatusCountsSql).all()).meta.rows_read;
    // Some active jobs, and a finished one of each final status (an index range's end may read
    // the first entry past it: that one is there from the start).
    const first = ["QUEUED", "RUNNING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"];
    await env.DB.batch(first.map((s) => insert.bind(newJobId(), s)));
    const small = await read();
    // A long finished history adds nothing to what the scrape reads.
    await env.DB.batch(
      Array.from({ length: 60 }, (_, i) => insert.bind(newJobId(), ["SUCCEEDED", "FAILED", "CANCELLED"][i % 3] ?? "")),
    );
    expect(await read()).toBe(small);

    const text = await (await api("/metrics")).text();
    for (const status of ACTIVE_STATUSES) {
      const n = await env.DB.prepare("SELECT COUNT(*) AS n FROM jobs WHERE status = ?")
        .bind(status)
        .first<{ n: number }>();
      expect(text).toContain(`skynet_jobs{status="${status}"} ${n?.n ?? 0}`);
    }
    expect(ACTIVE_STATUSES.length + 3).toBe(JobStatusSchema.options.length);
  });
});

describe("model call and token totals", () => {
  it("are kept at each snapshot, equal to a sum over every job; a replayed or older snapshot adds nothing", async () => {
    const db = getDb(env.DB);
    const base = { projectId: "once", userId: "api", intent: "x", status: "PLANNED", createdAt: 1 };
    const a = { ...base, id: newJobId(), updatedAt: 10, modelCalls: 1, tokensInput: 100, tokensCacheWrite: 40 };
    const b = { ...base, id: newJobId(), updatedAt: 10, modelCalls: 0 };
    await upsertJobQuery(db, a).run();
    await upsertJobQuery(db, b).run();
    const later = { ...a, updatedAt: 20, modelCalls: 2, tokensInput: 160, tokensCached: 900, tokensOutput: 75 };
    await upsertJobQuery(db, later).run();
    await upsertJobQuery(db, later).run(); // replayed
    await upsertJobQuery(db, { ...a, updatedAt: 15, modelCalls: 9, tokensInput: 999 }).run(); // older: not applied
    await upsertJobQuery(db, { ...b, updatedAt: 20, modelCalls: 1, tokensOutput: 5 }).run();
    const sums = await env.DB.prepare(
      `SELECT SUM(model_calls) AS calls, SUM(tokens_input) AS input, SUM(tokens_cached) AS cached,
              SUM(tokens_cache_write) AS cache_write, SUM(tokens_output) AS output FROM jobs`,
    ).first<Record<string, number>>();
    expect(sums?.calls).toBeGreaterThanOrEqual(3);
    const text = await (await api("/metrics")).text();
    expect(text).toContain(`skynet_model_calls_total ${sums?.calls}`);
    for (const kind of ["input", "cached", "cache_write", "output"])
      expect(text).toContain(`skynet_model_tokens_total{kind="${kind}"} ${sums?.[kind]}`);
  });
});
