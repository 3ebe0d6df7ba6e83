// The agent connection boundary (issue 12, Deliver 6; issue 13, Deliver 7): a frame flood closes
// the socket with 1008 and an audit row while the Worker keeps answering; heartbeats that change
// nothing do not write D1; frames over the size caps are refused; the registry and the ledger
// agree once the Sentinel marks an agent OFFLINE.
import { env, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import type { AgentRegistryDO } from "../src/agents/agent-registry-do.ts";
import { MAX_FRAME_CHARS_AFTER_HELLO, MAX_FRAME_CHARS_BEFORE_HELLO } from "../src/agents/frame-budget.ts";
import { runScheduled } from "./helpers/handlers.ts";
import { api, BASE, json, pairAgent, TestAgent } from "./helpers/worker.ts";

/** Polls for up to 10 s, and tests get 30 s: the machine running the tests may be busy. */
vi.setConfig({ testTimeout: 30_000 });
const poll = <T>(fn: () => Promise<T>) => expect.poll(fn, { timeout: 10_000 });

const registry = () => env.AGENT_REGISTRY.get(env.AGENT_REGISTRY.idFromName("global"));

async function heartbeatAt(agentId: string): Promise<{ last_heartbeat_at: number; updated_at: number }> {
  const row = await env.DB.prepare("SELECT last_heartbeat_at, updated_at FROM workers WHERE id = ?")
    .bind(agentId)
    .first<{ last_heartbeat_at: number; updated_at: number }>();
  if (!row) throw new Error("no worker row");
  return row;
}

/**
 * A heartbeat naming a job the agent does not hold: the registry answers it with job_cancel
 * after it has done everything else for that heartbeat (the ledger write included, if any).
 */
async function heartbeat(agent: TestAgent): Promise<void> {
  agent.send({
    type: "heartbeat",
    running: [{ jobId: "job_0000000000nothere", attempt: 1, leaseToken: "t".repeat(32), lastSeq: -1 }],
  });
  await agent.next("job_cancel");
}

describe("frame budget and size caps", () => {
  it("closes a connection flooding 10,000 heartbeats with 1008, audits it, and keeps serving", async () => {
    const { agentId, token } = await pairAgent("flooder");
    const agent = await TestAgent.connect(token, { workspaces: ["flood"] });
    const frame = JSON.stringify({ type: "heartbeat", running: [] });
    for (let n = 0; n < 10_000; n++) {
      if (agent.ws.readyState !== WebSocket.OPEN) break;
      agent.ws.send(frame);
    }
    const health = await api("/health", { token: null });
    expect(health.status).toBe(200);
    const closed = await agent.closed;
    expect(closed).toEqual({ code: 1008, reason: "too many frames: rate limit exceeded" });
    await poll(async () =>
      (
        await env.DB.prepare("SELECT action FROM audit_log WHERE actor = ?")
          .bind(`agent:${agentId}`)
          .all<{ action: string }>()
      ).results.map((r) => r.action),
    ).toEqual(["agent_rate_limited"]);
    const listed = await json<{ online: { agentId: string }[] }>(await api("/api/agents"));
    expect(listed.online.map((a) => a.agentId)).not.toContain(agentId);
    // A well-behaved agent is unaffected and the same token may connect again.
    const again = await TestAgent.connect(token, { workspaces: ["flood"] });
    await heartbeat(again);
    again.close();
  }, 60_000);

  it("lets an ordinary burst through: a 50 MB log's worth of frames plus heartbeats", async () => {
    const agent = await TestAgent.connect((await pairAgent("streamer")).token, { workspaces: ["burst"] });
    // 800 frames (50 MB in 64 KiB chunks) arrive as fast as the socket takes them.
    for (let n = 0; n < 800; n++) agent.ws.send(JSON.stringify({ type: "heartbeat", running: [] }));
    await heartbeat(agent);
    expect(agent.ws.readyState).toBe(WebSocket.OPEN);
    agent.close();
  });

  it("refuses a frame over the size cap with 1009, and an oversized frame before hello too", async () => {
    const agent = await TestAgent.connect((await pairAgent("bigframe")).token, { workspaces: ["big"] });
    agent.ws.send(`{"type":"heartbeat","running":[],"pad":"${"x".repeat(MAX_FRAME_CHARS_AFTER_HELLO)}"}`);
    expect((await agent.next("error")).code).toBe("frame_too_large");
    expect((await agent.closed).code).toBe(1009);

    const { token } = await pairAgent("bighello");
    const res = await exports.default.fetch(
      new Request(`${BASE}/agent/connect`, { headers: { Upgrade: "websocket", Authorization: `Bearer ${token}` } }),
    );
    const ws = res.webSocket;
    if (!ws) throw new Error("no websocket");
    ws.accept();
    const closed = new Promise<number>((resolve) => ws.addEventListener("close", (ev) => resolve(ev.code)));
    // Under the post-hello cap, over the pre-hello one.
    ws.send(`{"type":"hello","pad":"${"x".repeat(MAX_FRAME_CHARS_BEFORE_HELLO)}"}`);
    expect(await closed).toBe(1009);
  });
});

describe("heartbeats and the ledger", () => {
  it("does not write D1 for a heartbeat that changes nothing, and does once a minute has passed", async () => {
    const { agentId, token } = await pairAgent("steady");
    const agent = await TestAgent.connect(token, { workspaces: ["steady"] });
    await heartbeat(agent);
    const first = await heartbeatAt(agentId);
    await new Promise((r) => setTimeout(r, 20));
    for (let n = 0; n < 5; n++) await heartbeat(agent);
    expect(await heartbeatAt(agentId)).toEqual(first);
    // As if the last ledger write were a minute old: the next heartbeat refreshes it.
    await runInDurableObject(registry(), (instance: AgentRegistryDO) => {
      const insides = instance as unknown as {
        sessions: { parts: { ledger: { marks: Map<string, { at: number }> } } };
      };
      const marks = insides.sessions.parts.ledger.marks;
      const mark = marks.get(agentId);
      if (!mark) throw new Error("no ledger mark for the agent");
      mark.at -= 61_000;
    });
    await heartbeat(agent);
    expect((await heartbeatAt(agentId)).last_heartbeat_at).toBeGreaterThan(first.last_heartbeat_at);
    agent.close();
  });
});

describe("registry and ledger agree", () => {
  it("stops listing an agent as online once the Sentinel marked it OFFLINE", async () => {
    const { agentId, token } = await pairAgent("frozen");
    const agent = await TestAgent.connect(token, { workspaces: ["frozen"] });
    const online = async () =>
      (await json<{ online: { agentId: string }[] }>(await api("/api/agents"))).online.map((a) => a.agentId);
    expect(await online()).toContain(agentId);
    // Frozen: its socket is open but it has not been heard from for an hour.
    await env.DB.prepare("UPDATE workers SET last_heartbeat_at = ? WHERE id = ?")
      .bind(Date.now() - 3_600_000, agentId)
      .run();
    await runScheduled();
    const row = await env.DB.prepare("SELECT status FROM workers WHERE id = ?")
      .bind(agentId)
      .first<{ status: string }>();
    expect(row?.status).toBe("OFFLINE");
    expect(await online()).not.toContain(agentId);
    const listed = await json<{ known: { id: string; status: string }[] }>(await api("/api/agents"));
    expect(listed.known.find((w) => w.id === agentId)?.status).toBe("OFFLINE");
    expect((await agent.closed).code).toBe(4004);
  });
});
