// AgentRegistryDO: the agents' WebSockets (hibernation API) and the registry's RPC surface. The
// insides: sockets.ts (who is connected, frame budget), sessions.ts (hello, heartbeats, leaving),
// frames.ts (job frames relayed to JobDOs, permission requests), dispatcher.ts (offers, notices),
// assignments.ts (the table of waiting, offered and running jobs).
import { DurableObject } from "cloudflare:workers";
import {
  AgentToServerSchema,
  type ExecutionSpec,
  type PermissionDecisionFrame,
  parseFrame,
} from "../../protocol/index.ts";
import { loadConfig } from "../config.ts";
import { errorMessage, log } from "../lib/log.ts";
import { meterObject } from "../lib/op-meter.ts";
import { AssignmentBook } from "./assignments.ts";
import { Dispatcher } from "./dispatcher.ts";
import { batchCost } from "./frame-budget.ts";
import { Frames } from "./frames.ts";
import { JobStubs } from "./job-stubs.ts";
import type { AgentProfile } from "./matching.ts";
import { Sessions } from "./sessions.ts";
import { type Attachment, CLOSE_MARKED_OFFLINE, Sockets } from "./sockets.ts";
import { WorkerLedger } from "./worker-ledger.ts";

export interface AgentInfo extends AgentProfile {
  running: number;
  draining: boolean;
}

/** One agent as the registry sees it, for the agent itself (GET /agent/me). */
export interface AgentSelfView {
  connected: boolean;
  draining: boolean;
  lastHeartbeatAt: string | null;
  jobs: { jobId: string; attempt: number; state: "offered" | "running" }[];
}

export class AgentRegistryDO extends DurableObject<Env> {
  /** Public for tests (a field, not on the prototype, so not reachable over RPC). */
  readonly book: AssignmentBook;
  private readonly sockets: Sockets;
  private readonly dispatcher: Dispatcher;
  private readonly sessions: Sessions;
  private readonly frames: Frames;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    [ctx, env] = meterObject(this, ctx, env);
    const config = loadConfig(env);
    const ledger = new WorkerLedger(env, config.heartbeatTimeoutS);
    this.book = new AssignmentBook(ctx.storage.sql);
    this.sockets = new Sockets(ctx, env);
    const jobs = new JobStubs(env);
    this.dispatcher = new Dispatcher(ctx, config, this.book, this.sockets, jobs);
    const parts = { config, book: this.book, sockets: this.sockets, dispatcher: this.dispatcher, ledger, jobs };
    this.sessions = new Sessions(ctx, parts);
    this.frames = new Frames(env, parts);
    // Plain "ping" frames are answered without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  /** WebSocket upgrade; the Worker has already authenticated the token and names the agent. */
  override async fetch(request: Request): Promise<Response> {
    const agentId = request.headers.get("X-Skynet-Agent-Id");
    const name = request.headers.get("X-Skynet-Agent-Name") ?? "agent";
    if (!agentId || request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected an authenticated WebSocket upgrade", { status: 400 });
    }
    // One live socket per agent: a reconnect replaces the old one.
    for (const old of this.ctx.getWebSockets(agentId)) old.close(4000, "replaced by a newer connection");
    const pair = new WebSocketPair();
    const server = pair[1];
    this.ctx.acceptWebSocket(server, [agentId]);
    server.serializeAttachment({ agentId, name, profile: null } satisfies Attachment);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  // ---- RPC from the Worker and JobDOs -----------------------------------------------------------

  /** Queues (or re-offers, lifting backoffs) an attempt; "offered" when an agent got it now. */
  async assign(spec: ExecutionSpec, leaseToken: string): Promise<"offered" | "pending"> {
    // The usual case, an agent with room and no queue: one row, written as the offer.
    if (this.dispatcher.offerNew(spec, leaseToken)) {
      await this.dispatcher.armed();
      return "offered";
    }
    this.book.addPending(spec, leaseToken);
    const offered = await this.dispatcher.pump();
    const entry = this.book.get(spec.jobId);
    if (entry?.state === "pending" && entry.attempt === spec.attempt) await this.dispatcher.notify([entry]);
    return offered.includes(spec.jobId) || entry?.state === "offered" ? "offered" : "pending";
  }

  async cancel(jobId: string, attempt: number, reason: string): Promise<void> {
    const entry = this.book.get(jobId);
    if (!entry || entry.attempt !== attempt) return;
    this.book.remove(jobId);
    if (entry.state !== "pending") {
      this.sockets.send(entry.agentId, { type: "job_cancel", jobId, attempt, reason });
      await this.dispatcher.pump();
    }
  }

  /**
   * The Sentinel found these agents silent past the heartbeat timeout and marked them OFFLINE in
   * the ledger: their sockets (half-open or frozen) are closed, so the registry agrees.
   */
  async markOffline(agentIds: string[]): Promise<number> {
    let closed = 0;
    for (const agentId of agentIds) {
      const sockets = this.ctx.getWebSockets(agentId);
      for (const ws of sockets) {
        try {
          ws.close(CLOSE_MARKED_OFFLINE, "no heartbeat: marked offline");
        } catch {
          // already closing
        }
        closed += 1;
      }
      if (sockets.length > 0) await this.sessions.gone(agentId, false);
    }
    return closed;
  }

  async listAgents(): Promise<AgentInfo[]> {
    const draining = new Set(
      this.sockets
        .attachments(true)
        .filter((a) => a.draining)
        .map((a) => a.agentId),
    );
    return this.sockets.profiles(true).map((p) => ({
      ...p,
      running: this.book.loadOf(p.agentId),
      draining: draining.has(p.agentId),
    }));
  }

  async agentSelf(agentId: string): Promise<AgentSelfView> {
    const att = this.sockets.attachments(true).find((a) => a.agentId === agentId);
    return {
      connected: !!att?.profile,
      draining: att?.draining ?? false,
      lastHeartbeatAt: att?.lastHeartbeatAt ? new Date(att.lastHeartbeatAt).toISOString() : null,
      jobs: this.book.ofAgent(agentId).map((a) => ({ jobId: a.jobId, attempt: a.attempt, state: a.state })),
    };
  }

  async disconnectAgent(agentId: string, reason: string): Promise<number> {
    const sockets = this.ctx.getWebSockets(agentId);
    for (const ws of sockets) ws.close(4001, reason.slice(0, 100));
    return sockets.length;
  }

  /** Sends a requester's decision to the agent running that attempt (nothing if it is gone). */
  async sendPermissionDecision(frame: PermissionDecisionFrame): Promise<boolean> {
    const entry = this.book.get(frame.jobId);
    if (entry?.state !== "running" || entry.attempt !== frame.attempt) return false;
    this.sockets.send(entry.agentId, frame);
    return true;
  }

  // ---- WebSocket handlers ------------------------------------------------------------------------

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    if (this.sockets.tripped.has(ws)) return;
    const att = ws.deserializeAttachment() as Attachment | null;
    if (!att) return ws.close(4002, "unknown connection");
    if (!(await this.sockets.withinBudget(ws, att, raw))) return;
    const parsed = parseFrame(AgentToServerSchema, raw);
    if (!parsed.ok) return this.sockets.reply(ws, { type: "error", code: "bad_message", message: parsed.error });
    const msg = parsed.message;
    if (msg.type === "hello") return this.sessions.hello(ws, att, msg);
    if (!att.profile)
      return this.sockets.reply(ws, { type: "error", code: "hello_first", message: "send hello first" });
    try {
      switch (msg.type) {
        case "heartbeat":
          return await this.sessions.heartbeat(ws, att, msg.running);
        case "draining":
          return await this.sessions.draining(ws, att);
        case "resume":
          return await this.sessions.resume(ws, att, msg.running);
        case "permission_request":
          return await this.frames.permissionRequest(ws, att, msg);
        case "permission_expired":
          return await this.frames.permissionExpired(att, msg);
        case "batch":
          // The frame itself took one token on arrival; its contents pay the rest.
          if (!this.sockets.budgetFor(ws, Math.max(0, batchCost(msg.frames) - 1)))
            return await this.sockets.overBudget(ws, att);
          return await this.frames.relayBatch(ws, att, msg.frames);
        default:
          return await this.frames.relay(ws, att, msg);
      }
    } catch (err) {
      log("error", "agent message failed", { agentId: att.agentId, type: msg.type, error: errorMessage(err) });
      this.sockets.reply(ws, { type: "error", code: "internal", message: "the server could not process that message" });
    }
  }

  override async webSocketClose(ws: WebSocket): Promise<void> {
    // Answer the agent's close frame: a stopping agent waits for it (it proves every frame it sent
    // before, job_finished included, has arrived) rather than for a timeout.
    try {
      ws.close(1000, "goodbye");
    } catch {
      // already closed by the runtime
    }
    await this.sessions.ended(ws);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    await this.sessions.ended(ws);
  }

  override async alarm(): Promise<void> {
    this.dispatcher.alarmRan();
    for (const offer of this.book.expiredOffers(Date.now())) {
      log("warn", "job offer timed out", { jobId: offer.jobId, agentId: offer.agentId, attempt: offer.attempt });
      await this.dispatcher.offerEnded(offer.jobId, offer.agentId, offer.attempt, { kind: "timeout" });
    }
    await this.dispatcher.pump();
  }
}
