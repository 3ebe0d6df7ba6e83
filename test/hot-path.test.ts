// The READ_ONLY hot path (issue 17): a task the rules read whole is planned and queued inside
// the create call; the caller is answered once the JobDO has committed, the ledger row following
// from the outbox (also when the object stops before its drain: its alarm delivers it); the JobDO
// offers the attempt to the registry itself, and sends the queue message only when that failed,
// so the job is offered and run exactly once.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createTask } from "../src/core/orchestrator.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { jobFinished } from "./helpers/frames.ts";
import { runQueue } from "./helpers/handlers.ts";
import { insides, patchEnv } from "./helpers/job-insides.ts";
import { ledgerStatuses, pairAgent, TestAgent } from "./helpers/worker.ts";

const stub = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));
const poll = <T>(fn: () => Promise<T>) => expect.poll(fn, { timeout: 10_000, interval: 50 });

/** Creates the job as the Worker's create call would, for a user no agent serves unless `projectId` says. */
const create = (jobId: string, intent: string, projectId = "hot-nobody") =>
  stub(jobId).create({ jobId, projectId, intent, userId: "42", chatId: null });

const ledgerRow = (jobId: string) =>
  env.DB.prepare("SELECT status FROM jobs WHERE id = ?").bind(jobId).first<{ status: string }>();

/**
 * A D1 binding whose ledger writes wait while `state.open` is false (a slow ledger): its batches,
 * and a job row's write sent alone (a commit with no metrics to write is one statement).
 * Everything else passed through.
 */
function gatedDb(real: D1Database) {
  // A flag, not a promise: a promise made by the test cannot be awaited inside the object.
  const state = { open: false, batches: 0 };
  const gate = (st: D1PreparedStatement): D1PreparedStatement =>
    new Proxy(st, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (typeof value !== "function") return value;
        if (prop === "bind") return (...args: unknown[]) => gate(target.bind(...args));
        if (prop !== "run" && prop !== "all" && prop !== "raw" && prop !== "first") return value.bind(target);
        return async (...args: unknown[]) => {
          state.batches += 1;
          while (!state.open) await scheduler.wait(10);
          return value.apply(target, args);
        };
      },
    });
  const db = new Proxy(real, {
    get(target, prop, receiver) {
      if (prop === "prepare") {
        return (query: string) => {
          const st = target.prepare(query);
          return /^\s*insert into "jobs"/i.test(query) ? gate(st) : st;
        };
      }
      if (prop === "batch") {
        return async (statements: D1PreparedStatement[]) => {
          state.batches += 1;
          while (!state.open) await scheduler.wait(10);
          return target.batch(statements);
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { db, state };
}

/** A queue binding that records the messages instead of sending them (the test delivers them). */
function recordingQueue() {
  const sent: unknown[] = [];
  const queue = {
    send: async (body: unknown) => {
      sent.push(body);
    },
    sendBatch: () => Promise.reject(new Error("not used")),
  } as unknown as Queue;
  return { queue, sent };
}

describe("planning inside the create call", () => {
  it("queues a task the rules read whole before answering, with no alarm run", async () => {
    const jobId = newJobId();
    const view = await create(jobId, "check git status");
    expect(view.status).toBe("QUEUED");
    expect(view.plan?.proposedSteps.map((s) => s.action)).toEqual(["git_status"]);
    expect(view.attempt).toBe(1);
    // One commit: the events of create, plan and approve are in the ledger in order.
    await poll(() => ledgerStatuses(jobId)).toEqual(expect.arrayContaining(["CREATED", "PLANNED", "QUEUED"]));
    expect((await ledgerStatuses(jobId)).slice(0, 3)).toEqual(["CREATED", "PLANNED", "QUEUED"]);
  });

  it("leaves a task the rules cannot read whole to the planner in the alarm", async () => {
    const jobId = newJobId();
    const view = await create(jobId, "make me a sandwich");
    expect(view.status).toBe("CREATED");
    await runDurableObjectAlarm(stub(jobId));
    // No model is configured in tests: the rules' reading is the answer, given by the alarm.
    expect((await stub(jobId).get())?.status).toBe("FAILED");
  });

  it("keeps a task needing approval at PLANNED, planned inline all the same", async () => {
    const jobId = newJobId();
    const view = await create(jobId, "create a new file e.txt with v");
    expect(view.status).toBe("PLANNED");
    expect(view.risk).not.toBe("READ_ONLY");
  });
});

describe("answering at commit", () => {
  it("answers the create before the ledger row exists; the row follows from the outbox", async () => {
    const jobId = newJobId();
    const gated = { current: gatedDb(env.DB) };
    const restore = await patchEnv(jobId, (real) => {
      gated.current = gatedDb(real.DB);
      return { DB: gated.current.db };
    });
    try {
      // The same call POST /api/tasks and the bot's /task make.
      const view = await createTask(env, { jobId, intent: "check git status", projectId: "hot-nobody", userId: "api" });
      expect(view.status).toBe("QUEUED");
      // The ledger write was started and is held: the answer did not wait for it.
      await poll(async () => gated.current.state.batches).toBeGreaterThan(0);
      expect(await ledgerRow(jobId)).toBeNull();
      gated.current.state.open = true;
      await poll(async () => (await ledgerRow(jobId))?.status).toBe("QUEUED");
    } finally {
      gated.current.state.open = true;
      await restore();
    }
  });

  it("delivers the ledger row when the object stops between its commit and its drain", async () => {
    const jobId = newJobId();
    // The create's own drain is held at its D1 write, then the object is evicted (its memory
    // and that drain gone): only what was committed (state, outbox, alarm) is left.
    const gated = { current: gatedDb(env.DB) };
    await patchEnv(jobId, (real) => {
      gated.current = gatedDb(real.DB);
      return { DB: gated.current.db };
    });
    const view = await create(jobId, "check git status");
    expect(view.status).toBe("QUEUED");
    await poll(async () => gated.current.state.batches).toBeGreaterThan(0);
    // The object stops (as on a crash or a deploy), its held drain with it.
    await runInDurableObject(stub(jobId), (i: JobDO) => insides(i).ctx.abort("stopped (injected)")).catch(
      () => undefined,
    );
    gated.current.state.open = true; // (nothing waits on it any more)
    expect(await ledgerRow(jobId)).toBeNull();
    // The alarm armed by create drains the outbox in the new instance (real D1 again).
    expect(await runDurableObjectAlarm(stub(jobId))).toBe(true);
    expect((await ledgerRow(jobId))?.status).toBe("QUEUED");
    expect((await ledgerStatuses(jobId)).slice(0, 3)).toEqual(["CREATED", "PLANNED", "QUEUED"]);
  });
});

describe("dispatch from the JobDO, the queue only when that fails", () => {
  it("offers the attempt directly and sends no queue message; it runs once", async () => {
    const { token } = await pairAgent("hot-direct");
    const agent = await TestAgent.connect(token, { workspaces: ["hot-direct"], agentName: "hot-direct" });
    const jobId = newJobId();
    const recorded = { current: recordingQueue() };
    const restore = await patchEnv(jobId, () => {
      recorded.current = recordingQueue();
      return { DISPATCH_QUEUE: recorded.current.queue };
    });
    try {
      await create(jobId, "check git status", "hot-direct");
      const offer = await agent.nextOf("job_offer", (m) => m.jobId === jobId, 10_000);
      expect(offer.attempt).toBe(1);
      // The enqueue item is done (the outbox holds nothing for the agent lane) and sent nothing.
      await poll(async () => (await stub(jobId).opCounts())["outbox.enqueue_direct_offered"]).toBe(1);
      expect(recorded.current.sent).toEqual([]);
      // A stray delivery (none was sent) would still change nothing.
      expect(await stub(jobId).dispatch(1)).toBe("duplicate");

      agent.send({ type: "job_accept", jobId, attempt: 1, leaseToken: offer.leaseToken });
      await poll(async () => (await stub(jobId).get())?.status).toBe("RUNNING");
      agent.send(jobFinished({ jobId, attempt: 1, leaseToken: offer.leaseToken }));
      await poll(async () => (await ledgerRow(jobId))?.status).toBe("SUCCEEDED");
      expect(recorded.current.sent).toEqual([]);
      // Offered once.
      expect(agent.received.filter((m) => m.type === "job_offer" && m.jobId === jobId)).toEqual([]);
      const ops = await stub(jobId).opCounts();
      expect(ops["rpc.dispatch"]).toBe(1); // only the stray one above
    } finally {
      await restore();
      agent.close();
    }
  });

  it("sends the queue message when the registry cannot be reached, and the queue dispatches it", async () => {
    const { token } = await pairAgent("hot-fallback");
    const agent = await TestAgent.connect(token, { workspaces: ["hot-fallback"], agentName: "hot-fallback" });
    const jobId = newJobId();
    const recorded = { current: recordingQueue() };
    const restore = await patchEnv(jobId, (real) => {
      recorded.current = recordingQueue();
      const registry = new Proxy(real.AGENT_REGISTRY, {
        get(target, prop) {
          if (prop === "get" || prop === "getByName") {
            return () => {
              throw new Error("registry unreachable (injected)");
            };
          }
          const value = Reflect.get(target, prop);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      return { DISPATCH_QUEUE: recorded.current.queue, AGENT_REGISTRY: registry };
    });
    try {
      await create(jobId, "check git status", "hot-fallback");
      await poll(async () => recorded.current.sent).toEqual([{ jobId, attempt: 1 }]);
      const ops = await stub(jobId).opCounts();
      expect(ops["outbox.enqueue_direct_failed"]).toBe(1);
    } finally {
      await restore();
    }
    // The mark was undone, so the queue's message (its consumer, the registry reachable again)
    // hands the attempt over: the agent gets the offer.
    const result = await runQueue("skynet-dispatch", [{ id: "m", attempts: 1, body: recorded.current.sent[0] }]);
    expect(result.explicitAcks).toEqual(["m"]);
    expect(result.retryMessages).toEqual([]);
    try {
      const offer = await agent.nextOf("job_offer", (m) => m.jobId === jobId, 10_000);
      expect(offer.attempt).toBe(1);
      expect(await stub(jobId).dispatch(1)).toBe("duplicate");
    } finally {
      agent.close();
    }
  });
});
