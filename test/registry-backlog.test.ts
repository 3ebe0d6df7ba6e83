// The registry's dispatch pass costs the work it can do, not the backlog (issue 17): with every
// agent full, an event reads as many assignment rows with 3 jobs waiting as with 43. And the
// "no connected agent could take this job" notice, no longer worked out on every pass, is still
// sent once when such a job arrives, and when an agent leaves a waiting job without one. The
// agents' loads, now kept in memory, are read back the same by an object started afresh.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import type { ExecutionSpec } from "../protocol/index.ts";
import type { AgentRegistryDO } from "../src/agents/agent-registry-do.ts";
import { AssignmentBook } from "../src/agents/assignments.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { jobStubOf, queuedJob } from "./helpers/offers.ts";
import { JOB_EVENTS, pairAgent, TestAgent } from "./helpers/worker.ts";

vi.setConfig({ testTimeout: 60_000 });
const poll = <T>(fn: () => Promise<T>) => expect.poll(fn, { timeout: 15_000 });

const registry = () => env.AGENT_REGISTRY.get(env.AGENT_REGISTRY.idFromName("global"));

/** A spec straight to the registry: no JobDO behind it, so it is never offered, only queued. */
function waitingSpec(projectId: string): ExecutionSpec {
  return {
    jobId: newJobId(),
    attempt: 1,
    provider: "openclaw",
    projectId,
    steps: [{ id: "s1", action: "git_status", params: {}, risk: "READ_ONLY", timeoutS: 60 }],
    timeoutS: 60,
  };
}

type Counted = { book: { sql: SqlStorage } };

/** Rows the registry's table reads while `event` runs (its book's SQL, counted per cursor). */
async function rowsReadBy(event: () => Promise<unknown>): Promise<number> {
  const cursors: SqlStorageCursor<Record<string, SqlStorageValue>>[] = [];
  await runInDurableObject(registry(), (instance: AgentRegistryDO, state) => {
    const real = state.storage.sql;
    const counting = new Proxy(real, {
      get: (t, prop) =>
        prop === "exec"
          ? (query: string, ...bindings: unknown[]) => {
              const c = t.exec(query, ...bindings);
              cursors.push(c);
              return c;
            }
          : Reflect.get(t, prop),
    });
    (instance as unknown as Counted).book.sql = counting;
  });
  await event();
  return runInDurableObject(registry(), (instance: AgentRegistryDO, state) => {
    (instance as unknown as Counted).book.sql = state.storage.sql;
    return cursors.reduce((n, c) => n + c.rowsRead, 0);
  });
}

const waitingEvents = async (jobId: string) =>
  (
    await env.DB.prepare(`SELECT detail FROM ${JOB_EVENTS} WHERE job_id = ? AND event = 'waiting'`)
      .bind(jobId)
      .all<{ detail: string }>()
  ).results.map((r) => (JSON.parse(r.detail) as { reason: string }).reason);

describe("dispatch with every agent full", () => {
  it("reads no more rows with a long queue than with a short one", async () => {
    const project = "backlog";
    const { agentId, token } = await pairAgent("full");
    const agent = await TestAgent.connect(token, {
      workspaces: [project],
      maxConcurrency: 1,
    });
    // Its one slot taken by an outstanding offer.
    const held = await queuedJob(project);
    await jobStubOf(held).dispatch(1);
    expect((await agent.next("job_offer")).jobId).toBe(held);
    for (let i = 0; i < 3; i++) expect(await registry().assign(waitingSpec(project), "t")).toBe("pending");
    const short = await rowsReadBy(() => registry().assign(waitingSpec(project), "t"));
    for (let i = 0; i < 40; i++) await registry().assign(waitingSpec(project), "t");
    const long = await rowsReadBy(() => registry().assign(waitingSpec(project), "t"));
    expect(short).toBeGreaterThan(0);
    expect(long).toBe(short);
    // The backlog is really there, and none of it went to the full agent.
    const waiting = await runInDurableObject(registry(), (_i: AgentRegistryDO, state) =>
      state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM assignments WHERE state = 'pending'").one(),
    );
    expect(waiting.n).toBeGreaterThanOrEqual(45);
    expect(agent.received.filter((m) => m.type === "job_offer")).toEqual([]);
    // The loads live in memory; an object started afresh (after hibernation) reads the same back.
    const afresh = await runInDurableObject(registry(), (_i: AgentRegistryDO, state) =>
      new AssignmentBook(state.storage.sql).loadOf(agentId),
    );
    expect(afresh).toBe(1);
    expect((await registry().listAgents()).find((a) => a.agentId === agentId)?.running).toBe(1);
    agent.close();
  });
});

describe("the notice that no connected agent could take a waiting job", () => {
  it("is sent once when such a job arrives, and when the only agent that could take one leaves", async () => {
    const only = await TestAgent.connect((await pairAgent("only")).token, {
      workspaces: ["leave-a"],
      maxConcurrency: 1,
    });
    const other = await TestAgent.connect((await pairAgent("other")).token, { workspaces: ["leave-b"] });
    const held = await queuedJob("leave-a");
    await jobStubOf(held).dispatch(1);
    expect((await only.next("job_offer")).jobId).toBe(held);
    // Waiting behind a full agent that could take it: nothing to say.
    const waiting = await queuedJob("leave-a");
    await jobStubOf(waiting).dispatch(1);
    // A job of a project no connected agent serves: said at once, and once.
    const stranded = await queuedJob("leave-c");
    await jobStubOf(stranded).dispatch(1);
    const strandedWhy = 'no connected agent serves project "leave-c"; waiting for one that does';
    await poll(() => waitingEvents(stranded)).toEqual([strandedWhy]);
    await registry().assign(waitingSpec("leave-c"), "t");
    expect(await waitingEvents(waiting)).toEqual([]);
    // The one agent serving leave-a goes: both its jobs are now ones nobody connected can take.
    only.close();
    const leftWhy = 'no connected agent serves project "leave-a"; waiting for one that does';
    await poll(() => waitingEvents(waiting)).toEqual([leftWhy]);
    await poll(() => waitingEvents(held)).toEqual([leftWhy]);
    // Further passes (a redispatch, another agent's arrival) do not repeat either notice.
    await jobStubOf(waiting).dispatch(1);
    const late = await TestAgent.connect((await pairAgent("late")).token, { workspaces: ["leave-d"] });
    // Its hello's pass runs after the welcome: give it time to (wrongly) speak.
    await new Promise((r) => setTimeout(r, 500));
    expect(await waitingEvents(waiting)).toEqual([leftWhy]);
    expect(await waitingEvents(stranded)).toEqual([strandedWhy]);
    expect((await jobStubOf(waiting).get())?.status).toBe("QUEUED");
    for (const a of [other, late]) a.close();
  });

  it("is sent when the only agent that could take a waiting job says it is stopping", async () => {
    const stopping = await TestAgent.connect((await pairAgent("stopping")).token, {
      workspaces: ["drain-a"],
      maxConcurrency: 1,
    });
    const other = await TestAgent.connect((await pairAgent("staying")).token, { workspaces: ["drain-b"] });
    const held = await queuedJob("drain-a");
    await jobStubOf(held).dispatch(1);
    expect((await stopping.next("job_offer")).jobId).toBe(held);
    const waiting = await queuedJob("drain-a");
    await jobStubOf(waiting).dispatch(1);
    expect(await waitingEvents(waiting)).toEqual([]);
    stopping.send({ type: "draining" });
    await poll(() => waitingEvents(waiting)).toEqual([
      'no connected agent serves project "drain-a"; waiting for one that does',
    ]);
    for (const a of [stopping, other]) a.close();
  });
});
