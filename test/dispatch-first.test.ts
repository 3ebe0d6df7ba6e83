// The hand-over to the registry waits for no ledger write (drain.ts agentLaneFirst): a created
// job's offer reaches the agent while its ledger row is still on its way to D1, and the row then
// follows. Shown with D1 held: every statement the job's object sends waits until released.
import { env } from "cloudflare:test";
import { describe, expect, it, onTestFinished } from "vitest";
import { getDb, getJob } from "../src/ledger/store.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { patchEnv } from "./helpers/job-insides.ts";
import { jobStubOf } from "./helpers/offers.ts";
import { pairAgent, TestAgent } from "./helpers/worker.ts";

/** A D1 binding whose statements and batches all wait for `gate` before they run. */
function heldD1(real: D1Database, gate: Promise<void>): D1Database {
  const originals = new WeakMap<object, D1PreparedStatement>();
  const wrap = (stmt: D1PreparedStatement): D1PreparedStatement => {
    const proxy = new Proxy(stmt, {
      get(t, prop) {
        const value = Reflect.get(t, prop);
        if (typeof value !== "function") return value;
        if (prop === "bind") return (...args: unknown[]) => wrap(t.bind(...args));
        if (prop === "run" || prop === "all" || prop === "raw" || prop === "first")
          return async (...args: unknown[]) => {
            await gate;
            return (value as (...a: unknown[]) => unknown).apply(t, args);
          };
        return value.bind(t);
      },
    });
    originals.set(proxy, stmt);
    return proxy;
  };
  return new Proxy(real, {
    get(t, prop) {
      const value = Reflect.get(t, prop);
      if (typeof value !== "function") return value;
      if (prop === "prepare") return (query: string) => wrap(t.prepare(query));
      if (prop === "batch")
        return async (stmts: D1PreparedStatement[]) => {
          await gate;
          return t.batch(stmts.map((s) => originals.get(s) ?? s));
        };
      return value.bind(t);
    },
  });
}

describe("a created job's hand-over", () => {
  it("reaches the agent while the ledger write is held, and the row follows once D1 answers", async () => {
    const { token } = await pairAgent("dispatch-first");
    const agent = await TestAgent.connect(token, { workspaces: ["dispatch-first"] });
    onTestFinished(() => agent.close());
    const jobId = newJobId();
    let release = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const restore = await patchEnv(jobId, (real) => ({ DB: heldD1(real.DB, gate) }));
    onTestFinished(async () => {
      release();
      await restore();
    });
    const stub = jobStubOf(jobId);
    await stub.create({ jobId, projectId: "dispatch-first", intent: "check git status", userId: "42", chatId: null });
    const offer = await agent.nextOf("job_offer", (m) => m.jobId === jobId, 4_000);
    expect(offer.attempt).toBe(1);
    // The ledger has not been written: its statement is still waiting.
    expect(await getJob(getDb(env.DB), jobId)).toBeNull();
    release();
    await expect
      .poll(async () => (await getJob(getDb(env.DB), jobId))?.status, { timeout: 10_000, interval: 50 })
      .toBe("QUEUED");
  });
});
