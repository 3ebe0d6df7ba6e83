// Outbox items failing at the queue or at R2, for a while and forever (issue 20). The failures are
// injected at the binding the JobDO uses (its env), so the real outbox, drain, alarm, queue,
// registry and R2 do the rest: a send that fails is retried by the object's own alarm and sent
// once; an archive put that fails leaves the whole log in R2 once it works; an item that always
// fails is retried with its tries counted and holds up no other job.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import type { JobView } from "../protocol/index.ts";
import { logKey } from "../src/jobs/archive-log.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import { backoffMs, MAX_OUTBOX_TRIES } from "../src/jobs/outbox-items.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { archivedLog } from "./helpers/archived-log.ts";
import { jobFinished } from "./helpers/frames.ts";
import { insides, patchEnv } from "./helpers/job-insides.ts";
import { JOB_EVENTS, pairAgent, TestAgent } from "./helpers/worker.ts";

/** Polls for up to 20 s (backoffs of 1 s, 2 s … on a busy machine), and tests get 60 s. */
vi.setConfig({ testTimeout: 60_000 });
const poll = <T>(fn: () => Promise<T>) => expect.poll(fn, { timeout: 20_000, interval: 100 });

const stub = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));
const owner = { id: "42", isAdmin: false };

async function view(jobId: string): Promise<JobView> {
  const v = await stub(jobId).get();
  if (!v) throw new Error("no job");
  return v;
}

/** A queue binding that refuses `failures` sends (Infinity: all), then passes them to the real one. */
function flakyQueue(real: Queue, failures: number) {
  const counts = { tried: 0, sent: 0 };
  const queue = {
    send: async (body: unknown, options?: QueueSendOptions) => {
      counts.tried += 1;
      if (counts.tried <= failures) throw new Error("queue unavailable (injected)");
      await real.send(body, options);
      counts.sent += 1;
    },
    sendBatch: () => Promise.reject(new Error("not used")),
  } as unknown as Queue;
  return { queue, counts };
}

/**
 * A registry namespace that cannot be reached while `down.value` holds: the JobDO's direct
 * hand-over fails, so the enqueue item sends the queue message (and the queue's failures count).
 */
function switchableRegistry(real: Env["AGENT_REGISTRY"], down: { value: boolean }): Env["AGENT_REGISTRY"] {
  return new Proxy(real, {
    get(target, prop) {
      if ((prop === "get" || prop === "getByName") && down.value) {
        return () => {
          throw new Error("registry unreachable (injected)");
        };
      }
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** The items the job's outbox owes, in order (those that failed live in rows of their own). */
const outboxRows = (jobId: string) =>
  runInDurableObject(stub(jobId), (i: JobDO) =>
    insides(i)
      .outbox.items()
      .map(({ kind, tries }) => ({ kind, tries })),
  );

/** As if the backoff had passed: makes every failed item's row due and runs the object's alarm. */
async function retryNow(jobId: string): Promise<void> {
  await runInDurableObject(stub(jobId), (i: JobDO) => {
    insides(i).ctx.storage.sql.exec("UPDATE outbox SET next_at = 0");
  });
  await runDurableObjectAlarm(stub(jobId));
}

async function ledgerStatus(jobId: string): Promise<string | undefined> {
  const row = await env.DB.prepare("SELECT status FROM jobs WHERE id = ?").bind(jobId).first<{ status: string }>();
  return row?.status;
}

/** A created READ_ONLY job whose planning alarm (which queues it) has not run yet. */
async function created(projectId: string): Promise<string> {
  const jobId = newJobId();
  const input = { jobId, projectId, intent: "check git status", userId: owner.id, chatId: null };
  await runInDurableObject(stub(jobId), (i: JobDO) => insides(i).createUnplanned(input));
  return jobId;
}

const finished = (jobId: string, attempt: number, leaseToken: string) => jobFinished({ jobId, attempt, leaseToken });

describe("a queue send that fails", () => {
  it("keeps the enqueue item until the registry or the queue has the attempt: offered once, no send after", async () => {
    const { token } = await pairAgent("outbox-q");
    const agent = await TestAgent.connect(token, { workspaces: ["outbox-q"], agentName: "outbox-q" });
    const jobId = await created("outbox-q");
    const down = { value: true };
    const flaky = { current: flakyQueue(env.DISPATCH_QUEUE, 2) };
    const restore = await patchEnv(jobId, (real) => {
      flaky.current = flakyQueue(real.DISPATCH_QUEUE, 2);
      return { DISPATCH_QUEUE: flaky.current.queue, AGENT_REGISTRY: switchableRegistry(real.AGENT_REGISTRY, down) };
    });
    await runDurableObjectAlarm(stub(jobId)); // plans, queues; the hand-over and the send fail
    expect((await view(jobId)).status).toBe("QUEUED");
    expect(flaky.current.counts).toEqual({ tried: 1, sent: 0 });
    expect(await outboxRows(jobId)).toEqual([{ kind: "enqueue", tries: 1 }]);

    // The registry is back before the queue: the alarm's retry hands the attempt over itself,
    // and with the registry holding it no queue message is sent at all.
    down.value = false;
    const offer = await agent.next("job_offer", 20_000);
    expect(offer).toMatchObject({ jobId, attempt: 1 });
    await poll(() => outboxRows(jobId)).toEqual([]);
    expect(flaky.current.counts).toEqual({ tried: 1, sent: 0 });
    expect((await stub(jobId).opCounts())["outbox.enqueue_direct_offered"]).toBe(1);

    agent.send({ type: "job_accept", jobId, attempt: 1, leaseToken: offer.leaseToken });
    await poll(async () => (await view(jobId)).status).toBe("RUNNING");
    agent.send(finished(jobId, 1, offer.leaseToken));
    await poll(async () => ledgerStatus(jobId)).toBe("SUCCEEDED");
    const done = await view(jobId);
    expect(done.attempt).toBe(1);
    expect(flaky.current.counts).toEqual({ tried: 1, sent: 0 });
    expect(agent.received.filter((m) => m.type === "job_offer")).toEqual([]);
    await restore();
    agent.close();
  });
});

describe("an R2 put of the archived log that fails", () => {
  it("is retried until the whole log is in R2, byte for byte", async () => {
    const { token } = await pairAgent("outbox-r2");
    const agent = await TestAgent.connect(token, { workspaces: ["outbox-r2"], agentName: "outbox-r2" });
    const jobId = await created("outbox-r2");
    await runDurableObjectAlarm(stub(jobId));
    const offer = await agent.next("job_offer", 10_000);
    const fence = { jobId, attempt: offer.attempt, leaseToken: offer.leaseToken };
    agent.send({ type: "job_accept", ...fence });
    await poll(async () => (await view(jobId)).status).toBe("RUNNING");
    // Longer than LEDGER_LOG_MAX_BYTES: this log goes to R2, not onto the ledger row.
    const lines = ["On branch main\n", "Ünïcödé ✓ 日本語 — 🚀\n", `${"x".repeat(20_000)}\n`, "nothing to commit\n"];
    lines.forEach((data, seq) => {
      agent.send({ type: "log", ...fence, stepId: "s1", seq, stream: "stdout", data });
    });
    await poll(async () => (await view(jobId)).logTail).toContain("nothing to commit");

    const puts = { tried: 0, stored: 0 };
    const restore = await patchEnv(jobId, (real) => ({
      ARCHIVE: new Proxy(real.ARCHIVE, {
        get(target, prop) {
          if (prop !== "put") return Reflect.get(target, prop).bind(target);
          return async (key: string, value: ReadableStream, options?: R2PutOptions) => {
            puts.tried += 1;
            if (puts.tried === 1) throw new Error("R2 unavailable (injected)"); // refused before reading
            if (puts.tried === 2) {
              // Cut off mid-upload: part of the body read, then the connection drops.
              const reader = value.getReader();
              await reader.read();
              const err = new Error("R2 connection reset (injected)");
              await reader.cancel(err);
              throw err;
            }
            if (puts.tried === 3) {
              await new Response(value).arrayBuffer(); // the whole body sent, then refused
              throw new Error("R2 internal error (injected)");
            }
            const obj = await target.put(key, value, options);
            puts.stored += 1;
            return obj;
          };
        },
      }),
    }));
    agent.send(finished(jobId, fence.attempt, fence.leaseToken));
    await poll(async () => (await view(jobId)).status).toBe("SUCCEEDED");
    expect(await env.ARCHIVE.head(logKey(jobId))).toBeNull();

    await poll(async () => puts.stored).toBe(1);
    await poll(() => outboxRows(jobId)).toEqual([]);
    expect(puts.tried).toBe(4);
    const full = await stub(jobId).readLogChunks(null);
    const expected = new TextEncoder().encode(full?.text ?? "");
    const obj = await env.ARCHIVE.get(logKey(jobId));
    if (!obj) throw new Error("no archived log");
    expect(new Uint8Array(await obj.arrayBuffer())).toEqual(expected);
    expect((await archivedLog(jobId)).ledger).toBeNull();
    // The agent's lines are all there, once and in order.
    const text = full?.text ?? "";
    expect(text.indexOf(lines.join(""))).toBeGreaterThanOrEqual(0);
    expect(text.split(lines[1] as string)).toHaveLength(2);
    await restore();
    agent.close();
  });
});

describe("an outbox item that fails forever", () => {
  it("is retried with its tries counted and a capped backoff, and holds up no other job", async () => {
    const { token } = await pairAgent("outbox-forever");
    const agent = await TestAgent.connect(token, { workspaces: ["outbox-forever"], agentName: "outbox-forever" });
    const stuck = await created("outbox-forever");
    const dead = { current: flakyQueue(env.DISPATCH_QUEUE, Number.POSITIVE_INFINITY) };
    const restore = await patchEnv(stuck, (real) => {
      dead.current = flakyQueue(real.DISPATCH_QUEUE, Number.POSITIVE_INFINITY);
      return {
        DISPATCH_QUEUE: dead.current.queue,
        AGENT_REGISTRY: switchableRegistry(real.AGENT_REGISTRY, { value: true }),
      };
    });
    await runDurableObjectAlarm(stub(stuck)); // plans, queues; the hand-over and the send fail
    for (let n = 0; n < 8; n++) await retryNow(stuck);
    expect(dead.current.counts).toEqual({ tried: 9, sent: 0 });
    expect(await outboxRows(stuck)).toEqual([{ kind: "enqueue", tries: 9 }]);
    const wait = await runInDurableObject(stub(stuck), (i: JobDO) => {
      const [item] = insides(i).outbox.items();
      return (item?.nextAt ?? 0) - Date.now();
    });
    // Backed off 2^8 s jittered to 50–100 % (so at least 128 s), at most the 5-minute cap.
    expect(wait).toBeGreaterThan(backoffMs(8, () => 0) - 1000);
    expect(wait).toBeLessThanOrEqual(5 * 60_000);
    expect((await view(stuck)).status).toBe("QUEUED");

    // Another job on the same project and agent goes through meanwhile.
    const other = await created("outbox-forever");
    await runDurableObjectAlarm(stub(other));
    const offer = await agent.nextOf("job_offer", (m) => m.jobId === other, 10_000);
    agent.send({ type: "job_accept", jobId: other, attempt: 1, leaseToken: offer.leaseToken });
    await poll(async () => (await view(other)).status).toBe("RUNNING");
    agent.send(finished(other, 1, offer.leaseToken));
    await poll(async () => ledgerStatus(other)).toBe("SUCCEEDED");

    // Once the registry and the queue work again, the stuck item goes: nothing was lost; the
    // registry takes the attempt directly, so no queue message follows; the job runs once.
    await restore();
    await retryNow(stuck);
    const direct = await agent.nextOf("job_offer", (m) => m.jobId === stuck, 10_000);
    await poll(() => outboxRows(stuck)).toEqual([]);
    expect((await stub(stuck).opCounts())["outbox.enqueue_direct_offered"]).toBe(1);
    agent.send({ type: "job_accept", jobId: stuck, attempt: 1, leaseToken: direct.leaseToken });
    await poll(async () => (await view(stuck)).status).toBe("RUNNING");
    agent.send(finished(stuck, 1, direct.leaseToken));
    await poll(async () => ledgerStatus(stuck)).toBe("SUCCEEDED");
    expect(agent.received.filter((m) => m.type === "job_offer")).toEqual([]);
    agent.close();
  });

  it("keeps no later change of the same job out of the ledger while it backs off", async () => {
    const jobId = await created("outbox-later");
    const restore = await patchEnv(jobId, (real) => ({
      DISPATCH_QUEUE: flakyQueue(real.DISPATCH_QUEUE, Number.POSITIVE_INFINITY).queue,
      AGENT_REGISTRY: switchableRegistry(real.AGENT_REGISTRY, { value: true }),
    }));
    try {
      await runDurableObjectAlarm(stub(jobId));
      for (let n = 0; n < 3; n++) await retryNow(jobId);
      expect(await ledgerStatus(jobId)).toBe("QUEUED");
      const res = await stub(jobId).cancel(owner, "changed my mind");
      expect(res.ok && res.value.status).toBe("CANCELLED");
      // The cancel's writes are due now, the failing send only after its backoff: they go first.
      expect(await ledgerStatus(jobId)).toBe("CANCELLED");
      const events = await env.DB.prepare(`SELECT event FROM ${JOB_EVENTS} WHERE job_id = ? ORDER BY seq`)
        .bind(jobId)
        .all<{ event: string }>();
      // ("waiting": the JobDO's own dispatch found no agent for this project.)
      expect(events.results.map((e) => e.event).filter((e) => e !== "waiting")).toEqual([
        "create",
        "plan_ready",
        "approve",
        "cancel",
      ]);
      // The stuck send stays in its lane (its consumer will find the attempt stale). The job
      // cannot know that no hand-over reached the registry (a hand-over's mark is stored lazily),
      // so the agent cancel is owed too; it waits behind the send in the same lane, and the
      // registry, which has no such attempt, ignores it.
      expect(await outboxRows(jobId)).toEqual([
        { kind: "enqueue", tries: 4 },
        { kind: "cancel_agent", tries: 0 },
      ]);
    } finally {
      await restore();
    }
  });

  // An item that always fails is parked after a capped number of tries (with an alert and a way
  // to replay it: test/outbox-parking.test.ts), and the queue is no longer called for it.
  it("parks an item that always fails after a capped number of tries", async () => {
    const jobId = await created("outbox-parked");
    const dead = { current: flakyQueue(env.DISPATCH_QUEUE, Number.POSITIVE_INFINITY) };
    const restore = await patchEnv(jobId, (real) => {
      dead.current = flakyQueue(real.DISPATCH_QUEUE, Number.POSITIVE_INFINITY);
      return {
        DISPATCH_QUEUE: dead.current.queue,
        AGENT_REGISTRY: switchableRegistry(real.AGENT_REGISTRY, { value: true }),
      };
    });
    try {
      await runDurableObjectAlarm(stub(jobId));
      for (let n = 0; n < 40; n++) await retryNow(jobId);
      expect(dead.current.counts.tried).toBe(MAX_OUTBOX_TRIES);
    } finally {
      await restore();
    }
  });
});
