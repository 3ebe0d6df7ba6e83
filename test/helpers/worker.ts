// Helpers for worker tests: call the Worker's fetch handler, and drive a real agent WebSocket
// against the AgentRegistryDO from inside workerd.
import { env } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { hc } from "hono/client";
import { type AgentToServer, PROTOCOL_VERSION, type ServerToAgent, ServerToAgentSchema } from "../../protocol/index.ts";
import type { AppType } from "../../src/app.ts";
import type { JobEventRow } from "../../src/ledger/schema.ts";
import { getDb, listJobEvents } from "../../src/ledger/store.ts";

export const API_TOKEN = "test-api-token";
export const BASE = "https://skynet.test";

/** The statuses a job's ledger events moved it to, in order. */
export async function ledgerStatuses(jobId: string): Promise<string[]> {
  return (await ledgerEvents(jobId)).map((e) => e.toStatus);
}

/**
 * The job_events table the ledger had before migration 0012, as a subquery over jobs.events,
 * for tests that ask the ledger in SQL: `FROM ${JOB_EVENTS} WHERE job_id = ?`.
 */
export const JOB_EVENTS = `(SELECT j.id AS job_id, json_extract(e.value, '$.seq') AS seq,
  json_extract(e.value, '$.from') AS from_status, json_extract(e.value, '$.to') AS to_status,
  json_extract(e.value, '$.event') AS event, json_extract(e.value, '$.detail') AS detail,
  json_extract(e.value, '$.at') AS at FROM jobs j, json_each(j.events) e)`;

/** A job's ledger events (on its row, jobs.events), oldest first. */
export async function ledgerEvents(jobId: string): Promise<JobEventRow[]> {
  return listJobEvents(getDb(env.DB), jobId);
}

export function api(
  path: string,
  init: RequestInit & { json?: unknown; token?: string | null } = {},
): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.token !== null) headers.set("Authorization", `Bearer ${init.token ?? API_TOKEN}`);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(init.json);
  }
  return exports.default.fetch(new Request(`${BASE}${path}`, { ...init, headers, body }));
}

export async function json<T = Record<string, unknown>>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

export async function countLedgerJobs(): Promise<number> {
  const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM jobs").first<{ n: number }>();
  return row?.n ?? 0;
}

/** Pairs a new agent through the real endpoints and returns its token. */
export async function pairAgent(name = "test-agent"): Promise<{ agentId: string; token: string }> {
  const issued = await json<{ code: string }>(
    await api("/api/agents/pairing-codes", { method: "POST", json: { name } }),
  );
  const res = await api("/agent/pair", { method: "POST", json: { code: issued.code, name }, token: null });
  if (res.status !== 201) throw new Error(`pairing failed: ${res.status} ${await res.text()}`);
  return json<{ agentId: string; token: string }>(res);
}

export class TestAgent {
  readonly received: ServerToAgent[] = [];
  private waiters: (() => void)[] = [];
  readonly ws: WebSocket;
  /** Resolves with the close code and reason when the server closes the socket. */
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((resolve) =>
      ws.addEventListener("close", (ev) => resolve({ code: ev.code, reason: ev.reason })),
    );
    ws.accept();
    ws.addEventListener("message", (ev) => {
      const parsed = ServerToAgentSchema.safeParse(JSON.parse(String(ev.data)));
      if (parsed.success) this.received.push(parsed.data);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** An upgraded socket that has said nothing yet (no hello). */
  static async open(token: string): Promise<TestAgent> {
    const res = await exports.default.fetch(
      new Request(`${BASE}/agent/connect`, { headers: { Upgrade: "websocket", Authorization: `Bearer ${token}` } }),
    );
    if (!res.webSocket) throw new Error(`no websocket: ${res.status} ${await res.text()}`);
    return new TestAgent(res.webSocket);
  }

  static async connect(
    token: string,
    hello: Partial<Extract<AgentToServer, { type: "hello" }>> = {},
  ): Promise<TestAgent> {
    const agent = await TestAgent.open(token);
    agent.send({
      type: "hello",
      protocolVersion: PROTOCOL_VERSION,
      agentName: "test",
      agentVersion: "0.0.0",
      capabilities: ["git", "fs", "runner"],
      workspaces: ["default"],
      maxConcurrency: 2,
      allowShell: false,
      ...hello,
    });
    await agent.next("welcome");
    return agent;
  }

  send(msg: AgentToServer): void {
    this.ws.send(JSON.stringify(msg));
  }

  /** Waits for the next message of a type not yet consumed by an earlier `next`. */
  next<T extends ServerToAgent["type"]>(type: T, timeoutMs = 5000): Promise<Extract<ServerToAgent, { type: T }>> {
    return this.nextOf(type, () => true, timeoutMs);
  }

  /** Waits for the next message of a type that `match` accepts (e.g. the offer of one job). */
  async nextOf<T extends ServerToAgent["type"]>(
    type: T,
    match: (m: Extract<ServerToAgent, { type: T }>) => boolean,
    timeoutMs = 5000,
  ): Promise<Extract<ServerToAgent, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.received.findIndex((m) => m.type === type && match(m as Extract<ServerToAgent, { type: T }>));
      if (i >= 0) return this.received.splice(i, 1)[0] as Extract<ServerToAgent, { type: T }>;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${type}; got ${JSON.stringify(this.received)}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, Math.min(left, 100));
      });
    }
  }

  close(): void {
    this.ws.close(1000, "test done");
  }
}

/** The typed client for the Worker's routes (hc<AppType>), calling its fetch handler in process. */
export function typedClient(token: string | null = API_TOKEN) {
  return hc<AppType>(BASE, {
    fetch: (input: RequestInfo | URL, init?: RequestInit) => exports.default.fetch(new Request(input, init)),
    headers: token === null ? {} : { Authorization: `Bearer ${token}` },
  });
}
