// jobs as a WITHOUT ROWID table keyed by id (migration 0014, issue 18 cost per job): an insert
// writes one row fewer (no separate id index), the pages and the Sentinel still read through
// their indexes, and the rebuild keeps every row, column, index and trigger.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { getDb, listJobsQuery, upsertJobQuery } from "../src/ledger/store.ts";
import { newJobId } from "../src/lib/crypto.ts";

const db = () => getDb(env.DB);

function row(over: Partial<Parameters<typeof upsertJobQuery>[1]> = {}) {
  return {
    id: newJobId(),
    projectId: "keyed",
    userId: "u1",
    intent: "check git status",
    status: "CREATED",
    createdAt: 5,
    updatedAt: 5,
    ...over,
  };
}

async function plan(sql: string, params: unknown[]): Promise<string[]> {
  const { results } = await env.DB.prepare(`EXPLAIN QUERY PLAN ${sql}`)
    .bind(...params)
    .all<{ detail: string }>();
  return results.map((r) => r.detail);
}

describe("jobs keyed by id", () => {
  it("an insert writes the row and its index entries, with no id index", async () => {
    const written = async (q: ReturnType<typeof upsertJobQuery>) => (await q.run()).meta.rows_written;
    const api = row();
    // The row itself and the three indexes every job is in (status, user, created).
    expect(await written(upsertJobQuery(db(), api))).toBe(4);
    // A Telegram job is in the partial chat index too.
    expect(await written(upsertJobQuery(db(), row({ chatId: "c1", messageId: 3 })))).toBe(5);
    // Its end: the row and its status entry.
    const before = { status: api.status, chatId: null, messageId: null };
    expect(await written(upsertJobQuery(db(), { ...api, status: "SUCCEEDED", updatedAt: 9 }, before))).toBe(2);
    const stored = await env.DB.prepare("SELECT sql FROM sqlite_master WHERE name = 'jobs'").first<{ sql: string }>();
    expect(stored?.sql).toMatch(/WITHOUT ROWID\s*$/);
  });

  it("the first page, a person's page and the Sentinel's pages still read through their indexes", async () => {
    const first = listJobsQuery(db(), {}).toSQL();
    expect(await plan(first.sql, first.params)).toEqual(["SCAN jobs USING INDEX jobs_created_idx"]);
    const cursor = btoa(`5:${newJobId()}`).replaceAll("=", "");
    // The Sentinel walks the open jobs by status, page after page.
    for (const q of [{ status: "RUNNING" }, { status: "QUEUED", cursor, limit: 100 }]) {
      const s = listJobsQuery(db(), q).toSQL();
      const p = await plan(s.sql, s.params);
      expect(p, JSON.stringify(q)).toHaveLength(1);
      expect(p[0]).toMatch(/^SEARCH jobs USING INDEX jobs_status_created_idx \(status=\?/);
    }
    const mine = listJobsQuery(db(), { userId: "u1" }).toSQL();
    expect((await plan(mine.sql, mine.params))[0]).toMatch(
      /^SEARCH jobs USING INDEX jobs_user_created_idx \(user_id=\?/,
    );
    // Retention walks jobs by id (sentinel/retention.ts): now a range of the table's own key.
    expect(
      await plan("SELECT id, updated_at FROM jobs WHERE id >= ? AND id < ? ORDER BY id LIMIT ?", ["a", "b", 5]),
    ).toEqual(["SEARCH jobs USING PRIMARY KEY (id>? AND id<?)"]);
    // A Telegram follow-up finds its parent by the replied-to message.
    expect(await plan("SELECT id FROM jobs WHERE chat_id = ? AND message_id = ? LIMIT 1", ["c", 1])).toEqual([
      "SEARCH jobs USING COVERING INDEX jobs_chat_message_idx (chat_id=? AND message_id=?)",
    ]);
  });

  it("migration 0014 rebuilds a rowid jobs table keeping every row, column, index and trigger", async () => {
    const migration = env.TEST_MIGRATIONS.find((m) => m.name.startsWith("0014_"));
    const queries = migration?.queries ?? [];
    const create = queries.find((q) => q.includes("CREATE TABLE `jobs_new`")) ?? "";
    expect(create).not.toBe("");
    // The table as it was before 0014: the same columns, a rowid table, its indexes and triggers.
    const oldShape = create.replace("`jobs_new`", "`jobs`").replace(/WITHOUT ROWID\s*;?\s*$/, ";");
    const after = (q: string) => q.includes("CREATE INDEX") || q.includes("CREATE TRIGGER `jobs_tokens_");
    await env.DB.exec("DROP TABLE jobs");
    await env.DB.prepare(oldShape).run();
    for (const q of queries.filter(after)) await env.DB.prepare(q).run();
    const names = "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'jobs' AND type <> 'table' ORDER BY name";
    const objectsBefore = (await env.DB.prepare(names).all<{ name: string }>()).results;
    // The rowid table's own id index: the entry each insert paid for.
    expect(objectsBefore.map((o) => o.name)).toContain("sqlite_autoindex_jobs_1");
    const ins = env.DB.prepare(
      `INSERT INTO jobs (id, project_id, user_id, chat_id, message_id, intent, status, risk, attempt, plan_json, result_json,
         error, agent_id, created_at, updated_at, answer, model_calls, tokens_input, tokens_cached, tokens_cache_write, tokens_output, events)
       VALUES (?, 'p', ?, ?, ?, 'x', ?, 'READ_ONLY', 2, '{"a":1}', '{"r":2}', ?, 'agent_1', ?, ?, 'done', 3, 10, 4, 2, 7, ?)`,
    );
    await env.DB.batch([
      ins.bind(newJobId(), "u1", "c9", 11, "SUCCEEDED", null, 100, 200, '[{"seq":1,"from":null}]'),
      ins.bind(newJobId(), "api", null, null, "FAILED", "boom", 300, 400, "[]"),
    ]);
    await env.DB.exec(
      'UPDATE job_metrics SET data = \'{"jobs_status:QUEUED":2,"jobs_status:FAILED":1,"events:requeue":3}\'',
    );
    const all = "SELECT * FROM jobs ORDER BY id";
    const rowsBefore = (await env.DB.prepare(all).all()).results;

    for (const q of queries) await env.DB.prepare(q).run();

    expect((await env.DB.prepare(all).all()).results).toEqual(rowsBefore);
    const model = (o: { name: string }) => o.name.startsWith("jobs_model_totals_");
    expect((await env.DB.prepare(names).all<{ name: string }>()).results.filter((o) => !model(o))).toEqual(
      objectsBefore.filter((o) => o.name !== "sqlite_autoindex_jobs_1"),
    );
    // What the schema (schema.ts) declares, the chat index partial as migration 0011 made it.
    const objects = (await env.DB.prepare(names).all<{ name: string; sql: string }>()).results;
    expect(objects.map((o) => o.name)).toEqual([
      "jobs_chat_message_idx",
      "jobs_created_idx",
      "jobs_model_totals_insert",
      "jobs_model_totals_update",
      "jobs_status_created_idx",
      "jobs_tokens_insert",
      "jobs_tokens_update",
      "jobs_user_created_idx",
    ]);
    expect(objects[0]?.sql).toMatch(/WHERE `chat_id` IS NOT NULL$/);
    const table = await env.DB.prepare("SELECT sql FROM sqlite_master WHERE name = 'jobs'").first<{ sql: string }>();
    expect(table?.sql).toMatch(/WITHOUT ROWID\s*$/);
    expect(
      JSON.parse((await env.DB.prepare("SELECT data FROM job_metrics").first<{ data: string }>())?.data ?? ""),
    ).toEqual({
      "jobs_status:FAILED": 1,
      "events:requeue": 3,
      // The model totals so far, summed once over the two jobs.
      "model:calls": 6,
      "model:tokens:input": 20,
      "model:tokens:cached": 8,
      "model:tokens:cache_write": 4,
      "model:tokens:output": 14,
    });
    // The token triggers work on the new table.
    const day = "tokens_day:0:output";
    const tokens = async () =>
      (await env.DB.prepare("SELECT value FROM counters WHERE name = ?").bind(day).first<{ value: number }>())?.value ??
      0;
    const had = await tokens();
    await env.DB.prepare("UPDATE jobs SET tokens_output = tokens_output + 5 WHERE status = 'FAILED'").run();
    expect(await tokens()).toBe(had + 5);
  });
});
