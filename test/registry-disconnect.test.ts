// The registry's end of an agent's socket: close and error may both be delivered for one socket,
// and the disconnect path (offers back, running jobs given the reconnect grace) runs once. And
// its bookkeeping table, once named `jobs` like the ledger's, is renamed with its rows kept.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import type { AgentRegistryDO } from "../src/agents/agent-registry-do.ts";
import { AssignmentBook } from "../src/agents/assignments.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { pairAgent, TestAgent } from "./helpers/worker.ts";

vi.setConfig({ testTimeout: 30_000 });
const poll = <T>(fn: () => Promise<T>) => expect.poll(fn, { timeout: 10_000 });
const registry = () => env.AGENT_REGISTRY.getByName("global");
const job = (jobId: string) => env.JOB.getByName(jobId);

/** A READ_ONLY job running on a freshly connected agent. */
async function runningJob(project: string): Promise<{ agentId: string; jobId: string; agent: TestAgent }> {
  const paired = await pairAgent(`disc-${project}`);
  const agent = await TestAgent.connect(paired.token, { workspaces: [project] });
  const jobId = newJobId();
  await job(jobId).create({ jobId, projectId: project, intent: "check git status", userId: "42", chatId: null });
  await runDurableObjectAlarm(job(jobId));
  if ((await job(jobId).get())?.status === "PLANNED") await job(jobId).approve({ id: "42", isAdmin: true });
  await job(jobId).dispatch(1);
  const offer = await agent.next("job_offer");
  agent.send({ type: "job_accept", jobId, attempt: 1, leaseToken: offer.leaseToken });
  await poll(async () => (await job(jobId).get())?.status).toBe("RUNNING");
  return { agentId: paired.agentId, jobId, agent };
}

describe("an agent's socket that ends", () => {
  for (const order of ["close then error", "error then close", "both at once"] as const) {
    it(`runs the disconnect path once when ${order} are delivered`, async () => {
      const { agentId, jobId, agent } = await runningJob(`disc-${order.replaceAll(" ", "-")}`);
      await runInDurableObject(registry(), async (instance: AgentRegistryDO, state) => {
        const [ws] = state.getWebSockets(agentId);
        if (!ws) throw new Error("the agent's socket is not in the registry");
        const close = () => instance.webSocketClose(ws);
        const error = () => instance.webSocketError(ws);
        if (order === "close then error") {
          await close();
          await error();
        } else if (order === "error then close") {
          await error();
          await close();
        } else await Promise.all([close(), error()]);
      });
      // The job heard of its holder's disconnect exactly once (its operation counter).
      expect((await job(jobId).opCounts())["rpc.agentDisconnected"]).toBe(1);
      agent.close();
    });
  }
});

describe("the registry's bookkeeping table", () => {
  it("is renamed from `jobs` to `assignments` with its rows, once", async () => {
    const stub = env.AGENT_REGISTRY.getByName("migration-test");
    await runInDurableObject(stub, (_i: AgentRegistryDO, state) => {
      const sql = state.storage.sql;
      // The first release's table, with a waiting job in it.
      sql.exec("DROP TABLE assignments");
      sql.exec(`CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY, attempt INTEGER NOT NULL, lease_token TEXT NOT NULL, spec_json TEXT NOT NULL,
        rejected_by TEXT NOT NULL DEFAULT '[]', agent_id TEXT, state TEXT NOT NULL, deadline INTEGER NOT NULL DEFAULT 0,
        queued_at INTEGER NOT NULL)`);
      const spec = { jobId: "job_old", attempt: 2, steps: [] };
      sql.exec(
        "INSERT INTO jobs (job_id, attempt, lease_token, spec_json, state, queued_at) VALUES (?, 2, 'tok', ?, 'pending', 1)",
        "job_old",
        JSON.stringify(spec),
      );
      const tables = () =>
        sql
          .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
          .toArray()
          .map((t) => t.name)
          .filter((n) => !n.startsWith("_cf_") && !n.startsWith("sqlite_"));
      const book = new AssignmentBook(sql);
      expect(tables()).toEqual(["assignments"]);
      expect(book.get("job_old")).toMatchObject({ jobId: "job_old", attempt: 2, leaseToken: "tok", state: "pending" });
      // Opening it again changes nothing (the rename ran once).
      new AssignmentBook(sql);
      expect(tables()).toEqual(["assignments"]);
      expect([...new AssignmentBook(sql).pending()].map((p) => p.jobId)).toEqual(["job_old"]);
    });
  });
});
