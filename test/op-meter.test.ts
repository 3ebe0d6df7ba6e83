// The dev-only operation meter (issue #18 item 5): each metered call adds what Cloudflare bills for
// it, and with SKYNET_OP_METER unset nothing is wrapped and its route does not exist.
import { createExecutionContext, createMessageBatch, env, getQueueResult, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import worker from "../src/index.ts";
import { meterEnv, meterObject, OP_METER_PATH, opTotals, resetOpTotals } from "../src/lib/op-meter.ts";
import { API_TOKEN, api, BASE } from "./helpers/worker.ts";

const metered = { ...env, SKYNET_OP_METER: "1" };
const auth = { Authorization: `Bearer ${API_TOKEN}` };

async function totalsVia(e: Env, token: Record<string, string> = auth): Promise<Response> {
  return worker.fetch(new Request(`${BASE}${OP_METER_PATH}`, { headers: token }), e, createExecutionContext());
}

/** What `fn` added to each count. */
async function delta(fn: () => Promise<unknown>): Promise<Record<string, number>> {
  const before = opTotals();
  await fn();
  const after = opTotals();
  const out: Record<string, number> = {};
  for (const [k, n] of Object.entries(after)) if (n !== (before[k] ?? 0)) out[k] = n - (before[k] ?? 0);
  return out;
}

beforeEach(() => resetOpTotals());

describe("op meter, disabled (the default)", () => {
  it("has no route and meters nothing", async () => {
    expect((await totalsVia(env)).status).toBe(404);
    expect((await api(OP_METER_PATH)).status).toBe(404);
    const added = await delta(async () => worker.fetch(new Request(`${BASE}/health`), env, createExecutionContext()));
    expect(added).toEqual({});
    // A Durable Object constructed without the var keeps its own ctx and env.
    const obj = {};
    const [ctx, e] = meterObject(obj, {} as DurableObjectState, env);
    expect(Object.keys(obj)).toEqual([]);
    expect(e).toBe(env);
    expect(ctx).toEqual({});
  });
});

describe("op meter, enabled", () => {
  it("serves the totals only with the API token, and POST resets them", async () => {
    expect((await totalsVia(metered, {})).status).toBe(401);
    expect((await totalsVia(metered, { Authorization: "Bearer wrong" })).status).toBe(401);
    await worker.fetch(new Request(`${BASE}/health`), metered, createExecutionContext());
    const res = await totalsVia(metered);
    expect(res.status).toBe(200);
    const { ops } = (await res.json()) as { ops: Record<string, number> };
    // /health: one Worker request, one D1 query, one R2 head (class B), one registry RPC.
    expect(ops).toMatchObject({ "worker.fetch": 1, "d1.queries": 1, "r2.class_b": 1, "do.rpc": 1 });
    const reset = await worker.fetch(
      new Request(`${BASE}${OP_METER_PATH}`, { method: "POST", headers: auth }),
      metered,
      createExecutionContext(),
    );
    expect(((await reset.json()) as { ops: Record<string, number> }).ops).toEqual({});
  });

  it("counts D1 rows as each result's meta reports them, through prepare, first, raw and batch", async () => {
    const e = meterEnv(metered);
    await env.DB.prepare("CREATE TABLE IF NOT EXISTS meter_t (n INTEGER)").run();
    let meta = { rows_read: 0, rows_written: 0 };
    const insert = await delta(async () => {
      meta = (await e.DB.prepare("INSERT INTO meter_t (n) VALUES (?), (?), (?)").bind(1, 2, 3).run()).meta;
    });
    expect(meta.rows_written).toBeGreaterThanOrEqual(3);
    expect(insert["d1.queries"]).toBe(1);
    expect(insert["d1.rows_written"]).toBe(meta.rows_written);
    expect(insert["d1.rows_read"] ?? 0).toBe(meta.rows_read);
    // Per statement too (numbers masked), so the rows can be traced to the code that writes them.
    expect(insert["d1:INSERT INTO meter_t (n) VALUES (?), (?), (?) [written]"]).toBe(meta.rows_written);
    const firstRow = await e.DB.prepare("SELECT n FROM meter_t ORDER BY n").first<{ n: number }>();
    expect(firstRow).toEqual({ n: 1 });
    expect(await e.DB.prepare("SELECT n FROM meter_t ORDER BY n").first("n")).toBe(1);
    expect(await e.DB.prepare("SELECT n, n * 2 AS d FROM meter_t ORDER BY n").raw()).toEqual([
      [1, 2],
      [2, 4],
      [3, 6],
    ]);
    const batch = await delta(() =>
      e.DB.batch([e.DB.prepare("SELECT n FROM meter_t"), e.DB.prepare("DELETE FROM meter_t")]),
    );
    expect(batch["d1.queries"]).toBe(2);
    expect(batch["d1.rows_read"]).toBeGreaterThanOrEqual(3);
    expect(batch["d1.rows_written"]).toBeGreaterThanOrEqual(3);
    expect(batch["d1:DELETE FROM meter_t [written]"]).toBe(batch["d1.rows_written"]);
    expect(batch["d1:SELECT n FROM meter_t [read]"]).toBeGreaterThanOrEqual(3);
  });

  it("counts R2 classes, Durable Object calls and queue deliveries", async () => {
    const e = meterEnv(metered);
    expect(
      await delta(async () => {
        await e.ARCHIVE.put("meter/x", "x");
        await (await e.ARCHIVE.get("meter/x"))?.text();
        await e.ARCHIVE.delete("meter/x");
      }),
    ).toEqual({ "r2.class_a": 1, "r2.class_b": 1 });
    expect(
      await delta(async () => {
        await e.AGENT_REGISTRY.getByName("meter-test").listAgents();
      }),
    ).toEqual({ "do.rpc": 1 });
    const batch = createMessageBatch("skynet-dispatch", [
      { id: "m1", timestamp: new Date(), attempts: 1, body: { jobId: "../bad", attempt: "x" } },
      { id: "m2", timestamp: new Date(), attempts: 1, body: { jobId: "../bad", attempt: "x" } },
    ]);
    const added = await delta(async () => worker.queue?.(batch, metered));
    expect(added).toEqual({ "worker.queue": 1, "queue.reads": 2, "queue.deletes": 2 });
    // The consumer's acks still reach the real messages through the metered batch.
    expect((await getQueueResult(batch, createExecutionContext())).explicitAcks.sort()).toEqual(["m1", "m2"]);
  });

  it("counts a Durable Object's SQL rows, kv rows, alarms and incoming WebSocket messages", async () => {
    const stub = env.JOB.getByName("op-meter-storage");
    await runInDurableObject(stub, async (_i, state) => {
      const calls: string[] = [];
      const obj = {
        alarm: async () => calls.push("alarm"),
        webSocketMessage: async () => calls.push("message"),
      };
      const [ctx] = meterObject(obj, state, metered);
      const cursors: SqlStorageCursor<Record<string, SqlStorageValue>>[] = [];
      const added = await delta(async () => {
        cursors.push(ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS t (n INTEGER)"));
        cursors.push(ctx.storage.sql.exec("INSERT INTO t (n) VALUES (1), (2)"));
        const select = ctx.storage.sql.exec<{ n: number }>("SELECT n FROM t ORDER BY n");
        expect(select.toArray()).toEqual([{ n: 1 }, { n: 2 }]);
        cursors.push(select);
        ctx.storage.kv.put("k", 1);
        expect(ctx.storage.kv.get("k")).toBe(1);
        await obj.alarm();
        await obj.webSocketMessage();
        await obj.webSocketMessage();
      });
      expect(calls).toEqual(["alarm", "message", "message"]);
      // The rows each statement's own cursor reports, which is what is billed (the insert's 2 and
      // the table's creation).
      const sum = (k: "rowsRead" | "rowsWritten") => cursors.reduce((a, c) => a + c[k], 0);
      expect(sum("rowsWritten")).toBeGreaterThanOrEqual(2);
      expect(sum("rowsRead")).toBeGreaterThanOrEqual(2);
      expect(added).toMatchObject({
        "do.sql_rows_written": sum("rowsWritten"),
        "do.sql_rows_read": sum("rowsRead"),
        "do.kv_writes": 1,
        "do.kv_reads": 1,
        "do.alarm": 1,
        "do.ws_messages": 2,
      });
      // Each statement's rows are also counted under the statement (literals masked), and each kv
      // operation under its key, so the rows can be traced to the code that spends them.
      expect(added["sql:INSERT INTO t (n) VALUES (*), (*) [written]"]).toBe(cursors[1]?.rowsWritten);
      expect(added["sql:SELECT n FROM t ORDER BY n [read]"]).toBe(cursors[2]?.rowsRead);
      expect(added).toMatchObject({ "kv:put k": 1, "kv:get k": 1 });
    });
  });
});
