// What a job costs the registry's own table (issue 18, item 5): rows written are billed a
// thousand times rows read, so a job offered at once to an agent with room is one insert (and
// its holder-index entry) and one delete when its accept and result come in one batch, never
// entering the waiting queue; it reads no row by its id (the book keeps the rows it wrote). An
// older registry's table is converted in place, its rows kept.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import type { AgentRegistryDO } from "../src/agents/agent-registry-do.ts";
import { AssignmentBook } from "../src/agents/assignments.ts";
import { jobStubOf, queuedJob } from "./helpers/offers.ts";
import { pairAgent, TestAgent } from "./helpers/worker.ts";

vi.setConfig({ testTimeout: 60_000 });

const registry = () => env.AGENT_REGISTRY.getByName("global");

type Counted = { book: { sql: SqlStorage } };
type Statement = { query: string; cursor: SqlStorageCursor<Record<string, SqlStorageValue>> };

/** Every statement the registry's book runs while `event` runs, with its cursor. */
async function statementsOf(event: () => Promise<void>): Promise<Statement[]> {
  const seen: Statement[] = [];
  await runInDurableObject(registry(), (instance: AgentRegistryDO, state) => {
    const real = state.storage.sql;
    (instance as unknown as Counted).book.sql = new Proxy(real, {
      get: (t, prop) =>
        prop === "exec"
          ? (query: string, ...bindings: unknown[]) => {
              const cursor = t.exec(query, ...bindings);
              seen.push({ query, cursor });
              return cursor;
            }
          : Reflect.get(t, prop),
    });
  });
  try {
    await event();
  } finally {
    await runInDurableObject(registry(), (instance: AgentRegistryDO, state) => {
      (instance as unknown as Counted).book.sql = state.storage.sql;
    });
  }
  return seen;
}

describe("a job's cost in the registry's table", () => {
  it("is a few rows written and no read by its id, from queued to finished", async () => {
    const { agentId, token } = await pairAgent("frugal");
    const agent = await TestAgent.connect(token, { workspaces: ["cost"] });
    let jobId = "";
    const statements = await statementsOf(async () => {
      jobId = await queuedJob("cost");
      await jobStubOf(jobId).dispatch(1);
      const offer = await agent.next("job_offer");
      const fence = { jobId, attempt: offer.attempt, leaseToken: offer.leaseToken };
      agent.send({ type: "job_accept", ...fence });
      await expect.poll(async () => (await jobStubOf(jobId).get())?.status).toBe("RUNNING");
      const step = offer.spec.steps[0];
      if (!step) throw new Error("the offer has no step");
      agent.send({
        type: "job_finished",
        ...fence,
        status: "SUCCEEDED",
        result: {
          jobId,
          attempt: offer.attempt,
          status: "SUCCEEDED",
          steps: [{ stepId: step.id, action: step.action, outcome: "succeeded", exitCode: 0 }],
          artifacts: [],
        },
      });
      await expect.poll(async () => (await registry().agentSelf(agentId)).jobs).toEqual([]);
    });
    expect((await jobStubOf(jobId).get())?.status).toBe("SUCCEEDED");
    const written = statements.reduce((n, s) => n + s.cursor.rowsWritten, 0);
    // Offered at once (row and holder index), running, deleted: 4 as measured. Queued first,
    // then offered under a lease the job granted, it was 7; the rowid table with a key index and
    // five full indexes wrote 18.
    expect(written).toBeGreaterThan(0);
    expect(written).toBeLessThanOrEqual(4);
    expect(statements.some((s) => /state = 'pending'|'pending', \?\)/.test(s.query) && s.cursor.rowsWritten > 0)).toBe(
      false,
    );
    // The first lookup finds the new job absent; every later one is answered from memory.
    const byId = statements.filter((s) => /^SELECT \* FROM assignments WHERE job_id = \?$/.test(s.query));
    expect(byId.length).toBeLessThanOrEqual(1);
    expect(byId.reduce((n, s) => n + s.cursor.rowsRead, 0)).toBe(0);
    agent.close();
  });
});

describe("a short job, its accept and result in one batch", () => {
  it("writes one insert and one delete: never queued, never written as running", async () => {
    const { agentId, token } = await pairAgent("frugal-batch");
    const agent = await TestAgent.connect(token, { workspaces: ["cost-batch"] });
    let jobId = "";
    const statements = await statementsOf(async () => {
      jobId = await queuedJob("cost-batch");
      await jobStubOf(jobId).dispatch(1);
      const offer = await agent.next("job_offer");
      const fence = { jobId, attempt: offer.attempt, leaseToken: offer.leaseToken };
      const step = offer.spec.steps[0];
      if (!step) throw new Error("the offer has no step");
      agent.send({
        type: "batch",
        frames: [
          { type: "job_accept", ...fence },
          { type: "step_started", ...fence, stepId: step.id, startedAt: new Date().toISOString() },
          { type: "step_finished", ...fence, stepId: step.id, outcome: "succeeded", exitCode: 0, durationMs: 1 },
          {
            type: "job_finished",
            ...fence,
            status: "SUCCEEDED",
            result: {
              jobId,
              attempt: offer.attempt,
              status: "SUCCEEDED",
              steps: [{ stepId: step.id, action: step.action, outcome: "succeeded", exitCode: 0 }],
              artifacts: [],
            },
          },
        ],
      });
      await expect.poll(async () => (await jobStubOf(jobId).get())?.status).toBe("SUCCEEDED");
      await expect.poll(async () => (await registry().agentSelf(agentId)).jobs).toEqual([]);
    });
    const writes = statements.filter((s) => s.cursor.rowsWritten > 0);
    // The row, entering no index, then the delete: 2.
    expect(writes.map((s) => s.query.split(" ")[0])).toEqual(["INSERT", "DELETE"]);
    expect(writes.reduce((n, s) => n + s.cursor.rowsWritten, 0)).toBe(2);
    agent.close();
  });
});

type Alarmed = { dispatcher: { ctx: { storage: DurableObjectStorage } } };

describe("the registry's alarm", () => {
  it("is written for the first offer's deadline, not again for each later one, and then moves on", async () => {
    const { token } = await pairAgent("alarmed");
    const agent = await TestAgent.connect(token, { workspaces: ["cost-alarm"] });
    const alarm = () => runInDurableObject(registry(), (_i: AgentRegistryDO, state) => state.storage.getAlarm());
    const deadline = (jobId: string) =>
      runInDurableObject(
        registry(),
        (_i: AgentRegistryDO, state) =>
          state.storage.sql.exec<{ deadline: number }>("SELECT deadline FROM assignments WHERE job_id = ?", jobId).one()
            .deadline,
      );
    // Every alarm the dispatcher writes, counted.
    const writes: number[] = [];
    await runInDurableObject(registry(), (reg: AgentRegistryDO, state) => {
      const d = (reg as unknown as Alarmed).dispatcher;
      const storage = new Proxy(state.storage, {
        get: (t, prop) =>
          prop === "setAlarm"
            ? (at: number) => {
                writes.push(at);
                return t.setAlarm(at);
              }
            : Reflect.get(t, prop),
      });
      d.ctx = { storage };
    });
    const first = await queuedJob("cost-alarm");
    await jobStubOf(first).dispatch(1);
    await agent.next("job_offer");
    const second = await queuedJob("cost-alarm");
    await jobStubOf(second).dispatch(1);
    await agent.next("job_offer");
    expect(await deadline(second)).toBeGreaterThan(await deadline(first));
    // Written at most once for both offers (not at all if one still to come was kept).
    expect(writes.length).toBeLessThanOrEqual(1);
    const set = await alarm();
    expect(set ?? Infinity).toBeLessThanOrEqual(await deadline(first));
    // Run early with nothing due (the first offer was taken meanwhile), it sets the next one.
    await runInDurableObject(registry(), (reg: AgentRegistryDO) => reg.book.remove(first));
    await runDurableObjectAlarm(registry());
    expect(await alarm()).toBe(await deadline(second));
    agent.close();
  });
});

describe("an older registry's table", () => {
  it("is converted to one keyed by job id, rows, queue order and holders kept", async () => {
    const stub = env.AGENT_REGISTRY.getByName("conversion-test");
    await runInDurableObject(stub, (_i: AgentRegistryDO, state) => {
      const sql = state.storage.sql;
      // The table as the last release left it: rowid, a TEXT key, five indexes.
      sql.exec("DROP TABLE assignments");
      sql.exec(`CREATE TABLE assignments (
        job_id TEXT PRIMARY KEY, attempt INTEGER NOT NULL, lease_token TEXT NOT NULL, spec_json TEXT NOT NULL,
        rejected_by TEXT NOT NULL DEFAULT '[]', agent_id TEXT, state TEXT NOT NULL, deadline INTEGER NOT NULL DEFAULT 0,
        queued_at INTEGER NOT NULL, banned TEXT NOT NULL DEFAULT '{}', backoff TEXT NOT NULL DEFAULT '{}',
        wake_at INTEGER NOT NULL DEFAULT 0, notice TEXT)`);
      sql.exec("CREATE INDEX assignments_queue ON assignments (state, queued_at)");
      sql.exec("CREATE INDEX assignments_deadline ON assignments (state, deadline)");
      sql.exec("CREATE INDEX assignments_wake ON assignments (state, wake_at)");
      sql.exec("CREATE INDEX assignments_agent ON assignments (agent_id)");
      sql.exec("CREATE INDEX assignments_backoff ON assignments (job_id) WHERE backoff <> '{}'");
      const row = (id: string, state: string, agent: string | null, queuedAt: number, extra = "") =>
        sql.exec(
          `INSERT INTO assignments (job_id, attempt, lease_token, spec_json, agent_id, state, deadline, queued_at, backoff, wake_at, notice)
           VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          id,
          `tok-${id}`,
          JSON.stringify({ jobId: id, attempt: 1, steps: [] }),
          agent,
          state,
          state === "offered" ? 5_000 : 0,
          queuedAt,
          extra ? JSON.stringify({ agt_x: { until: 9_000, failures: 2 } }) : "{}",
          extra ? 9_000 : 0,
          extra || null,
        );
      row("job_late", "pending", null, 30, "no agent serves it");
      row("job_early", "pending", null, 10);
      row("job_offered", "offered", "agt_a", 5);
      row("job_running", "running", "agt_a", 1);

      const book = new AssignmentBook(sql);
      const ddl = sql
        .exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'assignments'")
        .one().sql;
      expect(ddl).toMatch(/WITHOUT ROWID/);
      const indexes = sql
        .exec<{ name: string }>(
          "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'assignments' AND sql IS NOT NULL ORDER BY name",
        )
        .toArray()
        .map((i) => i.name);
      expect(indexes).toEqual(["assignments_backed_off", "assignments_waiting", "assignments_waking"]);
      expect([...book.pending()].map((p) => p.jobId)).toEqual(["job_early", "job_late"]);
      expect(book.get("job_late")).toMatchObject({
        state: "pending",
        leaseToken: "tok-job_late",
        notice: "no agent serves it",
        backoff: { agt_x: { until: 9_000, failures: 2 } },
      });
      expect(book.loadOf("agt_a")).toBe(2);
      expect(book.ofAgent("agt_a").map((a) => [a.jobId, a.state, a.deadline])).toEqual(
        expect.arrayContaining([
          ["job_offered", "offered", 5_000],
          ["job_running", "running", 0],
        ]),
      );
      expect(book.nextDeadline(0)).toBe(5_000);
      expect(book.expiredOffers(6_000).map((a) => a.jobId)).toEqual(["job_offered"]);
      // Opened again (the object woken): nothing converted twice, nothing lost.
      const again = new AssignmentBook(sql);
      expect(sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM assignments").one().n).toBe(4);
      expect(again.loadOf("agt_a")).toBe(2);
      expect(again.nextDeadline(6_000)).toBe(5_000);
      expect(again.nextDeadline(5_500)).toBe(5_000);
    });
  });
});
