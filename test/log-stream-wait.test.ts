// The live log stream (GET /api/jobs/:id/logs/stream) waits on the job's object for what comes
// next: an agent's log frame reaches a waiting stream as it arrives, and the job's end as it is
// committed, without the stream asking the object again on a timer.
import { describe, expect, it, vi } from "vitest";
import { jobFinished } from "./helpers/frames.ts";
import { jobStubOf, offered } from "./helpers/offers.ts";
import { api } from "./helpers/worker.ts";

vi.setConfig({ testTimeout: 30_000 });
const poll = <T>(fn: () => Promise<T>) => expect.poll(fn, { timeout: 10_000, interval: 50 });
const ops = async (jobId: string, kind: string) => (await jobStubOf(jobId).opCounts())[kind] ?? 0;

describe("the live log stream", () => {
  it("hears an agent's log frame and the job's end as they come, waiting on the object in between", async () => {
    const { agent, agentId, jobId, offer } = await offered("log-wait", "log-stream-wait");
    const fence = { jobId, attempt: 1, leaseToken: offer.leaseToken };
    const stub = jobStubOf(jobId);
    expect(await stub.agentMessage(agentId, { type: "job_accept", ...fence })).toEqual({ ok: true });
    const first = { type: "log", ...fence, stepId: "s1", seq: 0, stream: "stdout", data: "first line\n" } as const;
    expect(await stub.agentMessage(agentId, first)).toEqual({ ok: true });

    const res = await api(`/api/jobs/${jobId}/logs/stream`);
    const reader = res.body?.getReader();
    if (!reader) throw new Error("no body");
    const dec = new TextDecoder();
    let text = "";
    const readUntil = async (needle: string) => {
      while (!text.includes(needle)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += dec.decode(value);
      }
    };
    await readUntil("first line");
    // Nothing new: the stream now waits on the object (one call), not re-reading it on a timer.
    await poll(() => ops(jobId, "rpc.readLogChunksWhenMoved")).toBe(1);
    const reads = await ops(jobId, "rpc.readLogChunks");
    await new Promise((r) => setTimeout(r, 1200));
    expect(await ops(jobId, "rpc.readLogChunks")).toBe(reads);
    expect(await ops(jobId, "rpc.readLogChunksWhenMoved")).toBe(1);

    const second = { ...first, seq: 1, data: "second line\n" };
    expect(await stub.agentMessage(agentId, second)).toEqual({ ok: true });
    await readUntil("second line");

    expect(await stub.agentMessage(agentId, jobFinished(fence))).toEqual({ ok: true });
    await readUntil("event: end");
    expect(text).toMatch(/event: end\ndata: \{"status":"SUCCEEDED"\}/);
    expect(text.indexOf("data: first line")).toBeLessThan(text.indexOf("data: second line"));
    agent.close();
  });
});
