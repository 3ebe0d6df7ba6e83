// The real AgentRegistryDO and JobDOs (not agent/test/fake-registry.ts): a token connecting
// twice (close 4000), a protocol version mismatch (4003), job_reject handling, and a cancel
// racing the agent's accept and finish.
import { env, evictDurableObject, runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION } from "../protocol/index.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { jobFinished } from "./helpers/frames.ts";
import { api, json, ledgerStatuses, pairAgent, TestAgent } from "./helpers/worker.ts";

const registry = () => env.AGENT_REGISTRY.get(env.AGENT_REGISTRY.idFromName("global"));
const job = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));

async function queuedJob(projectId: string, intent = "check git status"): Promise<string> {
  const jobId = newJobId();
  await job(jobId).create({ jobId, projectId, intent, userId: "42", chatId: null });
  await runDurableObjectAlarm(job(jobId));
  expect((await job(jobId).get())?.status).toBe("QUEUED");
  return jobId;
}

const events = ledgerStatuses;

describe("connections", () => {
  it("a token connecting twice: the older socket is closed with 4000, the newer one serves", async () => {
    const { agentId, token } = await pairAgent("twice");
    const first = await TestAgent.connect(token, { workspaces: ["twice"] });
    const second = await TestAgent.connect(token, { workspaces: ["twice"] });
    expect(await first.closed).toEqual({ code: 4000, reason: "replaced by a newer connection" });
    const online = (await registry().listAgents()).filter((a) => a.agentId === agentId);
    expect(online).toHaveLength(1);
    // Work goes to the live connection.
    const jobId = await queuedJob("twice");
    await job(jobId).dispatch(1);
    expect((await second.next("job_offer")).jobId).toBe(jobId);
    expect(first.received.filter((m) => m.type === "job_offer")).toEqual([]);
    second.close();
  });

  it("a protocol version mismatch: an error naming the server's version, then close 4003", async () => {
    const { agentId, token } = await pairAgent("old-agent");
    const agent = await TestAgent.open(token);
    agent.send({
      type: "hello",
      protocolVersion: PROTOCOL_VERSION + 1,
      agentName: "old",
      agentVersion: "0.0.0",
      capabilities: ["git"],
      workspaces: ["mismatch"],
      maxConcurrency: 1,
      allowShell: false,
    });
    expect(await agent.next("error")).toMatchObject({
      code: "protocol_version",
      message: `server speaks protocol ${PROTOCOL_VERSION}`,
    });
    expect(await agent.closed).toEqual({ code: 4003, reason: "protocol version mismatch" });
    expect(agent.received.filter((m) => m.type === "welcome")).toEqual([]);
    expect((await registry().listAgents()).some((a) => a.agentId === agentId)).toBe(false);
  });
});

describe("job_reject", () => {
  it("a rejected offer goes to another agent; a reject from an agent never offered it changes nothing", async () => {
    const pickyPair = await pairAgent("picky");
    const picky = await TestAgent.connect(pickyPair.token, { workspaces: ["reject"] });
    const jobId = await queuedJob("reject");
    await job(jobId).dispatch(1);
    const offer = await picky.next("job_offer");
    const willingPair = await pairAgent("willing");
    const willing = await TestAgent.connect(willingPair.token, { workspaces: ["reject"] });
    // An agent that was not offered the job cannot make it move.
    willing.send({ type: "job_reject", jobId, attempt: 1, leaseToken: offer.leaseToken, reason: "not mine" });
    picky.send({ type: "job_reject", jobId, attempt: 1, leaseToken: offer.leaseToken, reason: "busy with other work" });
    const again = await willing.next("job_offer");
    expect(again).toMatchObject({ jobId, attempt: 1, lease: { agentId: willingPair.agentId } });
    expect(again.leaseToken).not.toBe(offer.leaseToken);
    willing.send({ type: "job_accept", jobId, attempt: 1, leaseToken: again.leaseToken });
    await expect.poll(async () => (await job(jobId).get())?.status).toBe("RUNNING");
    expect((await job(jobId).get())?.agentId).toBe(willingPair.agentId);
    // The picky agent was not offered it again, and its late accept is refused.
    expect(picky.received.filter((m) => m.type === "job_offer")).toEqual([]);
    picky.send({ type: "job_accept", jobId, attempt: 1, leaseToken: offer.leaseToken });
    expect(await picky.next("error")).toMatchObject({
      code: "stale_lease",
      message: `attempt 1 of ${jobId} is no longer current`,
    });
    expect(await job(jobId).get()).toMatchObject({ status: "RUNNING", agentId: willingPair.agentId, attempt: 1 });
    expect(pickyPair.agentId).not.toBe(willingPair.agentId);
    picky.close();
    willing.close();
  });
});

describe("cancel racing the agent", () => {
  it("accept: a job cancelled while offered refuses the accept and tells the agent to stop", async () => {
    const agent = await TestAgent.connect((await pairAgent("slowpoke")).token, { workspaces: ["race-accept"] });
    const jobId = await queuedJob("race-accept");
    await job(jobId).dispatch(1);
    const offer = await agent.next("job_offer");
    expect((await api(`/api/jobs/${jobId}/cancel`, { method: "POST", json: {} })).status).toBe(200);
    agent.send({ type: "job_accept", jobId, attempt: 1, leaseToken: offer.leaseToken });
    expect(await agent.next("error")).toMatchObject({
      code: "lease_ended",
      message: `job ${jobId} is CANCELLED: its lease has ended`,
      jobId,
      attempt: 1,
    });
    expect(await agent.next("job_cancel")).toMatchObject({ jobId, attempt: 1 });
    expect(await job(jobId).get()).toMatchObject({ status: "CANCELLED", agentId: null });
    await expect.poll(() => events(jobId)).toEqual(["CREATED", "PLANNED", "QUEUED", "CANCELLED"]);
    agent.close();
  });

  it("finish: a result arriving after the cancel is refused and does not revive the job", async () => {
    const agent = await TestAgent.connect((await pairAgent("finisher")).token, { workspaces: ["race-finish"] });
    const jobId = await queuedJob("race-finish");
    await job(jobId).dispatch(1);
    const offer = await agent.next("job_offer");
    const fence = { jobId, attempt: 1, leaseToken: offer.leaseToken };
    agent.send({ type: "job_accept", ...fence });
    await expect.poll(async () => (await job(jobId).get())?.status).toBe("RUNNING");
    expect((await api(`/api/jobs/${jobId}/cancel`, { method: "POST", json: {} })).status).toBe(200);
    expect(await agent.next("job_cancel")).toMatchObject({ jobId, attempt: 1 });
    agent.send(jobFinished(fence));
    // The job is final, so its lease has ended: the late result is refused and changes nothing.
    expect(await agent.next("error")).toMatchObject({ code: "lease_ended", jobId, attempt: 1 });
    expect(await job(jobId).get()).toMatchObject({ status: "CANCELLED", error: "cancelled by api" });
    expect((await job(jobId).get())?.steps[0]?.state).toBe("pending");
    await expect.poll(() => events(jobId)).toEqual(["CREATED", "PLANNED", "QUEUED", "RUNNING", "CANCELLED"]);
    agent.close();
  });

  it("finish first: a cancel after the job succeeded is refused with 409", async () => {
    const agent = await TestAgent.connect((await pairAgent("quickfinish")).token, { workspaces: ["race-done"] });
    const jobId = await queuedJob("race-done");
    await job(jobId).dispatch(1);
    const offer = await agent.next("job_offer");
    const fence = { jobId, attempt: 1, leaseToken: offer.leaseToken };
    agent.send({ type: "job_accept", ...fence });
    agent.send(jobFinished(fence));
    await expect.poll(async () => (await job(jobId).get())?.status).toBe("SUCCEEDED");
    const cancel = await api(`/api/jobs/${jobId}/cancel`, { method: "POST", json: {} });
    expect(cancel.status).toBe(409);
    expect(await json(cancel)).toMatchObject({ error: { code: "conflict", message: "job already SUCCEEDED" } });
    expect((await job(jobId).get())?.status).toBe("SUCCEEDED");
    agent.close();
  });
});

describe("the registry evicted while a job runs", () => {
  it("keeps relaying the running job's messages from its stored book", async () => {
    const agent = await TestAgent.connect((await pairAgent("evicted")).token, { workspaces: ["evict"] });
    const jobId = await queuedJob("evict");
    await job(jobId).dispatch(1);
    const offer = await agent.next("job_offer");
    const fence = { jobId, attempt: 1, leaseToken: offer.leaseToken };
    agent.send({ type: "job_accept", ...fence });
    await expect.poll(async () => (await job(jobId).get())?.status).toBe("RUNNING");
    // Its memory is gone (as when it hibernates or is moved); sockets and storage remain.
    await evictDurableObject(registry());
    agent.send({ type: "heartbeat", running: [{ ...fence, lastSeq: 0 }] });
    agent.send({ type: "step_started", ...fence, stepId: "s1", startedAt: new Date().toISOString() });
    agent.send(jobFinished(fence));
    await expect.poll(async () => (await job(jobId).get())?.status).toBe("SUCCEEDED");
    expect(agent.received.filter((m) => m.type === "error" || m.type === "job_cancel")).toEqual([]);
    // The finished job left the registry's book: the agent's slot is free again.
    const next = await queuedJob("evict");
    await job(next).dispatch(1);
    expect((await agent.next("job_offer")).jobId).toBe(next);
    agent.close();
  });
});
// Offers that are never answered (timed out, or lost with a replaced socket) are covered in
// test/registry-liveness.test.ts.
