// The agent registry inside workerd: pairing, tokens, identity across hibernation, assignment by
// capability, project and free slot, accept timeouts, cancel fan-out.
import { env, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { type AgentSelf, AgentSelfSchema } from "../protocol/index.ts";
import type { AgentRegistryDO } from "../src/agents/agent-registry-do.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { insides } from "./helpers/job-insides.ts";
import { api, json, pairAgent, TestAgent } from "./helpers/worker.ts";

const registry = () => env.AGENT_REGISTRY.get(env.AGENT_REGISTRY.idFromName("global"));
const job = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));

async function queuedJob(projectId: string, intent: string): Promise<string> {
  const jobId = newJobId();
  await job(jobId).create({ jobId, projectId, intent, userId: "42", chatId: null });
  await runDurableObjectAlarm(job(jobId));
  const view = await job(jobId).get();
  if (view?.status === "PLANNED") await job(jobId).approve({ id: "42", isAdmin: true });
  // Until the JobDO's own drain has handed the attempt over (the POST does not wait for it).
  await expect.poll(() => runInDurableObject(job(jobId), (i: JobDO) => insides(i).outbox.size())).toBe(0);
  return jobId;
}

describe("pairing and tokens", () => {
  it("redeems a pairing code once and refuses reuse and expired codes", async () => {
    const issued = await json<{ code: string; expiresAt: string }>(
      await api("/api/agents/pairing-codes", { method: "POST", json: { name: "laptop" } }),
    );
    expect(issued.code).toMatch(/^[A-Z0-9]{8}$/);
    expect(Date.parse(issued.expiresAt) - Date.now()).toBeGreaterThan(9 * 60_000);
    const first = await api("/agent/pair", {
      method: "POST",
      json: { code: issued.code, name: "laptop" },
      token: null,
    });
    expect(first.status).toBe(201);
    const { token } = await json<{ token: string }>(first);
    expect(token).toMatch(/^skya_[0-9a-f]{64}$/);
    const again = await api("/agent/pair", { method: "POST", json: { code: issued.code, name: "x" }, token: null });
    expect(again.status).toBe(401);

    const late = await json<{ code: string }>(await api("/api/agents/pairing-codes", { method: "POST", json: {} }));
    await env.DB.prepare("UPDATE agent_tokens SET code_expires_at = ? WHERE token_hash IS NULL AND revoked_at IS NULL")
      .bind(Date.now() - 1)
      .run();
    const expired = await api("/agent/pair", { method: "POST", json: { code: late.code, name: "x" }, token: null });
    expect(expired.status).toBe(401);
    const stored = await env.DB.prepare("SELECT token_hash FROM agent_tokens WHERE token_hash IS NOT NULL").all<{
      token_hash: string;
    }>();
    expect(stored.results.map((r) => r.token_hash)).not.toContain(token);
    const malformed = await api("/agent/pair", { method: "POST", json: { code: "../../x", name: "x" }, token: null });
    expect(malformed.status).toBe(400);
  });

  it("slows down code guessing: after 20 failures in a minute from one address (here the local one) even a valid code waits", async () => {
    const valid = await json<{ code: string }>(await api("/api/agents/pairing-codes", { method: "POST", json: {} }));
    const bucket = `pair_failures:local:${Math.floor(Date.now() / 60_000)}`;
    await env.DB.prepare("INSERT INTO counters (name, value) VALUES (?, 19) ON CONFLICT(name) DO UPDATE SET value = 19")
      .bind(bucket)
      .run();
    const wrong = await api("/agent/pair", { method: "POST", json: { code: "ZZZZ9999", name: "x" }, token: null });
    expect(wrong.status).toBe(401);
    const blocked = await api("/agent/pair", { method: "POST", json: { code: valid.code, name: "x" }, token: null });
    expect(blocked.status).toBe(429);
    await env.DB.prepare("DELETE FROM counters WHERE name = ?").bind(bucket).run();
    const ok = await api("/agent/pair", { method: "POST", json: { code: valid.code, name: "x" }, token: null });
    expect(ok.status).toBe(201);
  });

  it("closes a revoked token's socket and refuses it afterwards", async () => {
    const { agentId, token } = await pairAgent("revokee");
    const agent = await TestAgent.connect(token, { workspaces: ["revoke"] });
    const tokens = await json<{ tokens: { id: string; agentId: string }[] }>(await api("/api/agents/tokens"));
    const mine = tokens.tokens.find((t) => t.agentId === agentId);
    expect(mine).toBeDefined();
    expect(JSON.stringify(tokens)).not.toContain(token);
    const res = await api(`/api/agents/tokens/${mine?.id}`, { method: "DELETE" });
    expect(await json(res)).toMatchObject({ revoked: mine?.id, socketsClosed: 1 });
    expect((await agent.closed).code).toBe(4001);
    await expect(TestAgent.connect(token)).rejects.toThrow(/401/);
  });

  it("refuses a WebSocket without a valid token", async () => {
    await expect(TestAgent.connect("skya_not_a_real_token_000000000000")).rejects.toThrow(/401/);
  });
});

describe("identity and assignment", () => {
  it("keeps an agent's identity in its socket attachment across hibernation", async () => {
    const { agentId, token } = await pairAgent("sleeper");
    const agent = await TestAgent.connect(token, { workspaces: ["hibernate"], agentName: "sleeper" });
    // Evict the object, as hibernation does: its memory is gone, its sockets stay open.
    await evictDurableObject(registry());
    const listed = await registry().listAgents();
    expect(listed.find((a) => a.agentId === agentId)).toMatchObject({ name: "sleeper", workspaces: ["hibernate"] });
    // And the woken object still relays for it.
    agent.send({ type: "heartbeat", running: [] });
    agent.ws.send("{bad");
    expect((await agent.next("error")).code).toBe("bad_message");
    agent.close();
  });

  it("offers jobs only to agents with the project, the capabilities and a free slot", async () => {
    const plain = await TestAgent.connect((await pairAgent("plain")).token, {
      workspaces: ["assign"],
      maxConcurrency: 1,
    });
    const shell = await TestAgent.connect((await pairAgent("shell")).token, {
      workspaces: ["assign"],
      capabilities: ["git", "fs", "runner", "shell"],
      allowShell: true,
      maxConcurrency: 1,
    });
    const other = await TestAgent.connect((await pairAgent("other")).token, { workspaces: ["elsewhere"] });

    const cmd = await queuedJob("assign", "run command echo hi");
    await job(cmd).dispatch(1);
    const cmdOffer = await shell.next("job_offer");
    expect(cmdOffer.jobId).toBe(cmd);
    shell.send({ type: "job_accept", jobId: cmd, attempt: 1, leaseToken: cmdOffer.leaseToken });

    const status = await queuedJob("assign", "check git status");
    await job(status).dispatch(1);
    // the shell agent is full (1 slot), so the plain one gets it
    expect((await plain.next("job_offer")).jobId).toBe(status);
    // The shell agent's accepted job shows in the registry's live view (the ledger's workers row
    // catches up by heartbeat within the 30 s gap: test/registry-ledger.test.ts).
    await expect
      .poll(async () => {
        const body = await json<{ online: { running: number }[] }>(await api("/api/agents"));
        return body.online.filter((a) => a.running > 0).length;
      })
      .toBeGreaterThan(0);

    const nowhere = await queuedJob("nobody-serves-this", "check git status");
    // The JobDO handed the attempt to the registry itself (pending there); the queue's message finds it done.
    expect(await job(nowhere).dispatch(1)).toBe("duplicate");
    expect(other.received.filter((m) => m.type === "job_offer")).toHaveLength(0);
    // An agent for that project connecting later picks the waiting job up.
    const late = await TestAgent.connect((await pairAgent("late")).token, { workspaces: ["nobody-serves-this"] });
    expect((await late.next("job_offer")).jobId).toBe(nowhere);
    for (const a of [plain, shell, other, late]) a.close();
  });

  it("re-offers a job to another agent when the first does not accept in time", async () => {
    const slow = await TestAgent.connect((await pairAgent("slow")).token, { workspaces: ["timeout"] });
    const jobId = await queuedJob("timeout", "check git status");
    await job(jobId).dispatch(1);
    const slowOffer = await slow.next("job_offer");
    const quickPair = await pairAgent("quick");
    const quick = await TestAgent.connect(quickPair.token, { workspaces: ["timeout"] });
    await runInDurableObject(registry(), (reg: AgentRegistryDO) => {
      reg.book.testAmend(jobId, { deadline: 1 });
    });
    await runDurableObjectAlarm(registry());
    const offer = await quick.next("job_offer");
    expect(offer.jobId).toBe(jobId);
    quick.send({ type: "job_accept", jobId, attempt: 1, leaseToken: offer.leaseToken });
    await expect.poll(async () => (await job(jobId).get())?.status).toBe("RUNNING");
    const quickId = quickPair.agentId;
    expect((await job(jobId).get())?.agentId).toBe(quickId);
    // The slow agent's late accept, with the lease of its own offer (taken back when it timed
    // out), is refused; the job stays with the agent holding the new lease.
    expect(offer.leaseToken).not.toBe(slowOffer.leaseToken);
    expect(offer.lease.agentId).toBe(quickPair.agentId);
    slow.send({ type: "job_accept", jobId, attempt: 1, leaseToken: slowOffer.leaseToken });
    expect(await slow.next("error")).toMatchObject({
      code: "stale_lease",
      message: `attempt 1 of ${jobId} is no longer current`,
      jobId,
      attempt: 1,
    });
    expect(await job(jobId).get()).toMatchObject({ status: "RUNNING", agentId: quickId, attempt: 1 });
    // Its step messages are refused too: it never ran anything of this job.
    slow.send({
      type: "step_started",
      jobId,
      attempt: 1,
      leaseToken: slowOffer.leaseToken,
      stepId: "s1",
      startedAt: new Date().toISOString(),
    });
    expect(await slow.next("error")).toMatchObject({
      code: "stale_lease",
      message: `attempt 1 of ${jobId} is no longer current`,
    });
    slow.close();
    quick.close();
  });

  it("offers a draining agent nothing more, and says so in GET /agent/me", async () => {
    const { agentId, token } = await pairAgent("drainer");
    const drainer = await TestAgent.connect(token, { workspaces: ["draining"] });
    const me = async () => json<AgentSelf>(await api("/agent/me", { token }));
    const before = AgentSelfSchema.parse(await me());
    expect(before).toMatchObject({ agentId, name: "drainer", connected: true, draining: false, jobs: [] });
    expect(Date.parse(before.lastHeartbeatAt ?? "")).not.toBeNaN();
    expect(Date.parse(before.serverTime ?? "")).not.toBeNaN();

    // Extra fields are refused (and change nothing); the bare frame is taken.
    drainer.ws.send(JSON.stringify({ type: "draining", until: 0 }));
    expect((await drainer.next("error")).code).toBe("bad_message");
    expect((await me()).draining).toBe(false);
    drainer.send({ type: "draining" });
    await expect.poll(async () => (await me()).draining).toBe(true);
    expect((await registry().listAgents()).find((a) => a.agentId === agentId)).toMatchObject({ draining: true });

    const waiting = await queuedJob("draining", "check git status");
    expect(await job(waiting).dispatch(1)).toBe("duplicate"); // already handed over by the JobDO
    expect(drainer.received.filter((m) => m.type === "job_offer")).toHaveLength(0);
    // Another agent for the project gets it; the draining one still got nothing.
    const fresh = await TestAgent.connect((await pairAgent("fresh")).token, { workspaces: ["draining"] });
    expect((await fresh.next("job_offer")).jobId).toBe(waiting);
    expect(drainer.received.filter((m) => m.type === "job_offer")).toHaveLength(0);

    expect((await api("/agent/me", { token: `skya_${"0".repeat(64)}` })).status).toBe(401);
    expect((await api("/agent/me")).status).toBe(401); // the owner's API token is not an agent's
    drainer.close();
    fresh.close();
    await expect.poll(async () => (await me()).connected).toBe(false);
  });

  it("sends job_cancel to the agent running a cancelled job", async () => {
    const agent = await TestAgent.connect((await pairAgent("cancelee")).token, { workspaces: ["cancel"] });
    const jobId = await queuedJob("cancel", "check git status");
    await job(jobId).dispatch(1);
    const offer = await agent.next("job_offer");
    agent.send({ type: "job_accept", jobId, attempt: 1, leaseToken: offer.leaseToken });
    await expect.poll(async () => (await job(jobId).get())?.status).toBe("RUNNING");
    const res = await job(jobId).cancel({ id: "42", isAdmin: false }, "changed my mind");
    expect(res.ok && res.value.status).toBe("CANCELLED");
    const cancel = await agent.next("job_cancel");
    expect(cancel).toMatchObject({ jobId, attempt: 1 });
    agent.close();
  });

  it("refuses a job_finished whose result describes another job", async () => {
    const agent = await TestAgent.connect((await pairAgent("liar")).token, { workspaces: ["liar"] });
    const jobId = await queuedJob("liar", "check git status");
    await job(jobId).dispatch(1);
    const offer = await agent.next("job_offer");
    const fence = { jobId, attempt: 1, leaseToken: offer.leaseToken };
    agent.send({ type: "job_accept", ...fence });
    await expect.poll(async () => (await job(jobId).get())?.status).toBe("RUNNING");
    agent.send({
      type: "job_finished",
      ...fence,
      status: "SUCCEEDED",
      result: { jobId: "job_0000000000otherjob", attempt: 1, status: "SUCCEEDED", steps: [], artifacts: [] },
    });
    expect((await agent.next("error")).code).toBe("bad_message");
    expect((await job(jobId).get())?.status).toBe("RUNNING");
    agent.close();
  });

  it("answers a malformed frame with an error and changes nothing", async () => {
    const agent = await TestAgent.connect((await pairAgent("garbage")).token, { workspaces: ["garbage"] });
    agent.ws.send("{not json");
    expect((await agent.next("error")).code).toBe("bad_message");
    agent.ws.send(JSON.stringify({ type: "job_finished", jobId: "job_0000000000xx", attempt: 1 }));
    expect((await agent.next("error")).message).toMatch(/invalid message/);
    agent.close();
  });
});
