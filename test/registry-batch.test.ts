// `batch` frames through the real AgentRegistryDO and JobDO: a short job's accept, start, output,
// finish and result in ONE frame are applied in order, exactly once, by one JobDO call; a stale
// attempt's batch changes nothing; a refusal mid-batch stops the rest and names the frame; the
// frame budget counts a batch by what it carries.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { BatchableMessage, ServerMessageOf } from "../protocol/index.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { offered } from "./helpers/offers.ts";
import { pairAgent, TestAgent } from "./helpers/worker.ts";

const job = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));

/** A whole short job as the agent batches it: accept, started, output, finished, result. */
function wholeJob(offer: ServerMessageOf<"job_offer">, output: string): BatchableMessage[] {
  const fence = { jobId: offer.jobId, attempt: offer.attempt, leaseToken: offer.leaseToken };
  const step = offer.spec.steps[0];
  if (!step) throw new Error("the offer has no step");
  const at = new Date().toISOString();
  return [
    { type: "job_accept", ...fence },
    { type: "step_started", ...fence, stepId: step.id, startedAt: at },
    { type: "log", ...fence, stepId: step.id, seq: 0, stream: "stdout", data: output },
    { type: "log", ...fence, stepId: step.id, seq: 1, stream: "stdout", data: "second chunk\n" },
    { type: "log", ...fence, stepId: step.id, seq: 2, stream: "stderr", data: "third chunk\n" },
    { type: "step_finished", ...fence, stepId: step.id, outcome: "succeeded", exitCode: 0, durationMs: 3 },
    {
      type: "job_finished",
      ...fence,
      status: "SUCCEEDED",
      result: {
        jobId: offer.jobId,
        attempt: offer.attempt,
        status: "SUCCEEDED",
        steps: [{ stepId: step.id, action: step.action, outcome: "succeeded", exitCode: 0 }],
        artifacts: [],
      },
    },
  ];
}

async function logText(jobId: string): Promise<string> {
  const logs = await job(jobId).readLogs({ tail: 1000 });
  return logs?.lines.join("\n") ?? "";
}

describe("batch frames", () => {
  it("applies a short job's frames in order, exactly once, in one JobDO call", async () => {
    const { agent, agentId, jobId, offer } = await offered("batcher", "batch");
    const frames = wholeJob(offer, "On branch main\nnothing to commit\n");
    agent.send({ type: "batch", frames });
    await expect.poll(async () => (await job(jobId).get())?.status).toBe("SUCCEEDED");
    const view = await job(jobId).get();
    expect(view?.steps.map((s) => s.state)).toEqual(["succeeded"]);
    const text = await logText(jobId);
    expect(text.split("nothing to commit")).toHaveLength(2);
    // Every chunk of the run of log frames, once and in order.
    expect(text).toMatch(/nothing to commit\n+second chunk\n+third chunk/);
    expect(text.split("third chunk")).toHaveLength(2);
    const ops = await job(jobId).opCounts();
    expect(ops["rpc.agentBatch"]).toBe(1);
    expect(ops["rpc.agentMessage"]).toBeUndefined();
    // The slot is free again: the registry settled the accept and the finish from the batch.
    expect((await env.AGENT_REGISTRY.getByName("global").agentSelf(agentId)).jobs).toEqual([]);

    // Replayed after a reconnect: refused at its first frame, nothing applied twice.
    agent.send({ type: "batch", frames });
    const replay = await agent.next("error");
    expect(replay).toMatchObject({ code: "lease_ended", jobId, attempt: 1, frameIndex: 0 });
    expect((await logText(jobId)).split("nothing to commit")).toHaveLength(2);
    expect((await job(jobId).opCounts())["rpc.agentBatch"]).toBe(2);
    agent.close();
  });

  it("applies one job's frames in the order sent, even when the first waits on storage", async () => {
    const { agent, jobId, offer } = await offered("orderly", "batch-order");
    const fence = { jobId, attempt: 1, leaseToken: offer.leaseToken };
    const whole = wholeJob(offer, "");
    const [accept, started] = whole;
    const [finishedStep, finishedJob] = whole.slice(-2);
    if (!accept || !started || !finishedStep || !finishedJob) throw new Error("unexpected batch layout");
    agent.send({ type: "batch", frames: [accept, started] });
    await expect.poll(async () => (await job(jobId).get())?.status).toBe("RUNNING");
    const body = "report\n";
    const sha256 = [...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body)))]
      .map((b) => b.toString(16).padStart(2, "0"))
      .join("");
    await env.ARCHIVE.put(`artifacts/jobs/${jobId}/s1-report.txt`, body);
    const artifact = { name: "s1-report.txt", size: body.length, sha256, contentType: "text/plain", stepId: "s1" };
    // The artifact's check reads R2 inside the JobDO; the finish sent right behind it must not
    // overtake it (it would end the lease, and the artifact would be refused as too late).
    agent.send({ type: "artifact_ready", ...fence, artifact });
    agent.send({ type: "batch", frames: [finishedStep, finishedJob] });
    await expect.poll(async () => (await job(jobId).get())?.status).toBe("SUCCEEDED");
    expect((await job(jobId).get())?.artifacts.map((a) => a.name)).toEqual(["s1-report.txt"]);
    expect(agent.received.filter((m) => m.type === "error")).toEqual([]);
    agent.close();
  });

  it("refuses a stale attempt's batch as a whole", async () => {
    const { agent, jobId, offer } = await offered("stale-batcher", "batch-stale");
    const frames = wholeJob({ ...offer, leaseToken: "f".repeat(48) }, "stale output\n");
    agent.send({ type: "batch", frames });
    expect(await agent.next("error")).toMatchObject({ code: "stale_lease", jobId, attempt: 1, frameIndex: 0 });
    const view = await job(jobId).get();
    expect(view?.status).toBe("QUEUED");
    expect(view?.steps.map((s) => s.state)).toEqual(["pending"]);
    expect(await logText(jobId)).not.toContain("stale output");
    agent.close();
  });

  it("stops at the first refused frame and tells the agent which one", async () => {
    const { agent, jobId, offer } = await offered("mid-batcher", "batch-mid");
    const frames = wholeJob(offer, "after the refusal\n");
    // The second frame names a step the job does not have: the accept before it holds, nothing after.
    const started = frames[1];
    if (started?.type !== "step_started") throw new Error("unexpected batch layout");
    frames[1] = { ...started, stepId: "s9" };
    agent.send({ type: "batch", frames });
    expect(await agent.next("error")).toMatchObject({ code: "stale_lease", jobId, attempt: 1, frameIndex: 1 });
    const view = await job(jobId).get();
    expect(view?.status).toBe("RUNNING");
    expect(view?.steps.map((s) => s.state)).toEqual(["pending"]);
    expect(await logText(jobId)).not.toContain("after the refusal");
    agent.close();
  });

  it("refuses a batch mixing attempts, and changes nothing", async () => {
    const { agent, jobId, offer } = await offered("mixer", "batch-mix");
    const [accept, ...rest] = wholeJob(offer, "mixed\n");
    if (!accept) throw new Error("empty batch");
    agent.send({ type: "batch", frames: [accept, ...rest.map((f) => ({ ...f, jobId: newJobId() }))] });
    expect(await agent.next("error")).toMatchObject({ code: "bad_message" });
    expect((await job(jobId).get())?.status).toBe("QUEUED");
    agent.close();
  });

  it("counts a batch against the frame budget by the frames it carries", async () => {
    const agent = await TestAgent.connect((await pairAgent("flooder")).token, { workspaces: ["batch-flood"] });
    const fence = { jobId: newJobId(), attempt: 1, leaseToken: "0".repeat(48) };
    const frames: BatchableMessage[] = Array.from({ length: 64 }, () => ({ type: "job_accept", ...fence }));
    // 32 frames on the wire but 2,048 inside them: over the burst of 2,000.
    for (let i = 0; i < 32; i++) agent.send({ type: "batch", frames });
    expect((await agent.closed).code).toBe(1008);
  });

  it("lets a fast log through: long chunks cost a quarter each, more of them than the burst", async () => {
    const agent = await TestAgent.connect((await pairAgent("streamer-batch")).token, { workspaces: ["batch-log"] });
    const fence = { jobId: newJobId(), attempt: 1, leaseToken: "0".repeat(48) };
    const data = "x".repeat(16 * 1024);
    let seq = 0;
    // 2,100 chunks in 35 batches, sent at once: counted whole they would be over the burst of 2,000.
    for (let b = 0; b < 35; b++) {
      const frames: BatchableMessage[] = Array.from({ length: 60 }, () => ({
        type: "log",
        ...fence,
        seq: seq++,
        stream: "stdout",
        data,
      }));
      agent.send({ type: "batch", frames });
    }
    // Each batch is answered (no such job): all 35 were taken, and the socket is still open.
    for (let b = 0; b < 35; b++) expect((await agent.next("error", 20_000)).code).toBe("not_found");
    expect(agent.ws.readyState).toBe(WebSocket.OPEN);
    agent.close();
  });
});
