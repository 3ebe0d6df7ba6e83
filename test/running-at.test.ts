// Issue 17: RUNNING is dated when the agent took the attempt, not when its first batch arrived.
// The accept says how long it waited on the agent (`heldMs`, its monotonic clock); the JobDO dates
// the RUNNING event at its own arrival time less that, never before the attempt was queued and
// never after the arrival. The lease and the run limit still count from the arrival, a replayed
// accept moves nothing, and a heldMs out of range is a bad frame that changes nothing.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import type { BatchableMessage } from "../protocol/index.ts";
import { loadConfig } from "../src/config.ts";
import { deadlines } from "../src/jobs/deadlines.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import { jobFinished } from "./helpers/frames.ts";
import { insides } from "./helpers/job-insides.ts";
import { jobStubOf, offered } from "./helpers/offers.ts";
import { ledgerEvents } from "./helpers/worker.ts";

vi.setConfig({ testTimeout: 30_000 });
const poll = <T>(fn: () => Promise<T>) => expect.poll(fn, { timeout: 10_000 });
const stored = async (jobId: string) => {
  const s = await runInDurableObject(jobStubOf(jobId), (i: JobDO) => insides(i).load());
  if (!s) throw new Error("no state");
  return s;
};
/** Real time passes between the queuing and the accept, so a held accept is not clamped. */
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runningEvent(jobId: string) {
  await poll(async () => (await ledgerEvents(jobId)).some((e) => e.toStatus === "RUNNING")).toBe(true);
  const e = (await ledgerEvents(jobId)).find((x) => x.toStatus === "RUNNING");
  if (!e) throw new Error("no RUNNING event");
  return { at: e.at, detail: JSON.parse(e.detail ?? "{}") as Record<string, unknown> };
}

describe("the RUNNING event's time", () => {
  it("is the arrival less heldMs; the lease and the run limit still count from the arrival", async () => {
    const { agent, agentId, jobId, offer } = await offered("held-accept", "running-at-held");
    await pause(200);
    const before = await stored(jobId);
    const accept = { type: "job_accept", jobId, attempt: 1, leaseToken: offer.leaseToken, heldMs: 30 } as const;
    expect(await jobStubOf(jobId).agentMessage(agentId, accept)).toEqual({ ok: true });
    const s = await stored(jobId);
    const arrival = s.startedAt ?? 0;
    expect(arrival).toBeGreaterThanOrEqual((before.queuedAt ?? 0) + 200);
    const running = await runningEvent(jobId);
    expect(running.at).toBe(arrival - 30);
    expect(running.detail).toMatchObject({ attempt: 1, agentId, heldMs: 30 });
    expect(s.runningAt).toBe(arrival - 30);
    expect(s.lastAtByStatus?.RUNNING).toBe(arrival - 30);
    expect((await jobStubOf(jobId).get())?.startedAt).toBe(new Date(arrival - 30).toISOString());
    // What the server observed bounds the attempt: heldMs shortens neither the lease nor the run limit.
    const config = loadConfig(env);
    expect(s.lease?.expiresAt).toBe(arrival + config.leaseS * 1000);
    const run = deadlines(s, config).find((d) => d.kind === "run");
    expect(run?.at).toBe(arrival + (Math.min(s.spec?.timeoutS ?? config.jobTimeoutS, config.jobTimeoutS) + 30) * 1000);
    agent.close();
  });

  it("is never before the attempt was queued, however long the agent says it held the accept", async () => {
    const { agent, agentId, jobId, offer } = await offered("lying-agent", "running-at-clamp");
    await pause(50);
    const queued = (await stored(jobId)).lastAtByStatus?.QUEUED;
    expect(queued).toBeTypeOf("number");
    const accept = { type: "job_accept", jobId, attempt: 1, leaseToken: offer.leaseToken, heldMs: 60_000 } as const;
    expect(await jobStubOf(jobId).agentMessage(agentId, accept)).toEqual({ ok: true });
    const s = await stored(jobId);
    expect(s.startedAt).toBeGreaterThan(queued ?? 0);
    const running = await runningEvent(jobId);
    expect(running.at).toBe(queued);
    expect(running.detail.heldMs).toBe((s.startedAt ?? 0) - (queued ?? 0));
    agent.close();
  });

  it("is the arrival for an accept without heldMs (an older agent), and a replayed accept moves nothing", async () => {
    const { agent, agentId, jobId, offer } = await offered("old-agent", "running-at-plain");
    const fence = { jobId, attempt: 1, leaseToken: offer.leaseToken };
    expect(await jobStubOf(jobId).agentMessage(agentId, { type: "job_accept", ...fence })).toEqual({ ok: true });
    const s = await stored(jobId);
    const running = await runningEvent(jobId);
    expect(running.at).toBe(s.startedAt);
    expect(running.detail).not.toHaveProperty("heldMs");
    // A reconnect re-sends the accept (with whatever it claims): the recorded start stays.
    await pause(100);
    const replay = { type: "job_accept", ...fence, heldMs: 50 } as const;
    expect(await jobStubOf(jobId).agentMessage(agentId, replay)).toEqual({ ok: true });
    const after = await stored(jobId);
    expect(after.eventSeq).toBe(s.eventSeq);
    expect(after.runningAt).toBe(s.runningAt);
    expect(after.startedAt).toBe(s.startedAt);
    expect((await ledgerEvents(jobId)).filter((e) => e.toStatus === "RUNNING").map((e) => e.at)).toEqual([running.at]);
    agent.close();
  });

  it("moves only RUNNING back in a batch: later frames keep the arrival, and RUNNING comes first in time", async () => {
    const { agent, jobId, offer } = await offered("batching-agent", "running-at-batch");
    await pause(100);
    const fence = { jobId, attempt: 1, leaseToken: offer.leaseToken };
    const frames: BatchableMessage[] = [
      { type: "job_accept", ...fence, heldMs: 20 },
      { type: "step_started", ...fence, stepId: "s1", startedAt: new Date().toISOString() },
      { type: "step_finished", ...fence, stepId: "s1", outcome: "succeeded", exitCode: 0, durationMs: 3 },
      jobFinished(fence),
    ];
    agent.send({ type: "batch", frames });
    await poll(async () => (await ledgerEvents(jobId)).map((e) => e.toStatus)).toContain("SUCCEEDED");
    const s = await stored(jobId);
    const events = await ledgerEvents(jobId);
    const at = (to: string) => events.find((e) => e.toStatus === to)?.at;
    // The accept's arrival (startedAt) less 20; the result's own arrival, no earlier, for SUCCEEDED.
    expect(at("RUNNING")).toBe((s.startedAt ?? 0) - 20);
    expect(at("SUCCEEDED")).toBe(s.finishedAt);
    expect(s.finishedAt).toBeGreaterThanOrEqual(s.startedAt ?? Number.POSITIVE_INFINITY);
    expect(at("QUEUED")).toBeLessThan(at("RUNNING") ?? 0);
    expect(agent.received.filter((m) => m.type === "error")).toEqual([]);
    agent.close();
  });

  it("refuses an accept whose heldMs is out of range as a bad frame, and changes nothing", async () => {
    const { agent, jobId, offer } = await offered("bad-held", "running-at-bad");
    const fence = { jobId, attempt: 1, leaseToken: offer.leaseToken };
    const before = await stored(jobId);
    for (const heldMs of [-1, 60_001, 1.5, "30", null]) {
      agent.ws.send(JSON.stringify({ type: "job_accept", ...fence, heldMs }));
      const error = await agent.next("error");
      expect(error.code).toBe("bad_message");
      expect(error.message).toContain("heldMs");
    }
    // Inside a batch too: the whole batch is refused before any frame is applied.
    agent.ws.send(JSON.stringify({ type: "batch", frames: [{ type: "job_accept", ...fence, heldMs: 99_999 }] }));
    expect((await agent.next("error")).message).toContain("heldMs");
    const after = await stored(jobId);
    expect(after.status).toBe("QUEUED");
    expect(after.lease).toBeNull();
    expect(after.eventSeq).toBe(before.eventSeq);
    expect((await ledgerEvents(jobId)).map((e) => e.toStatus)).not.toContain("RUNNING");
    // The offer still stands: a good accept takes it.
    agent.send({ type: "job_accept", ...fence, heldMs: 0 });
    await poll(async () => (await jobStubOf(jobId).get())?.status).toBe("RUNNING");
    agent.close();
  });
});
