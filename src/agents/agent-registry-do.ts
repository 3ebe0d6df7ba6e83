// AgentRegistryDO: the agents' WebSockets (hibernation API), their capabilities and heartbeats,
// assignment of jobs to agents with accept timeouts, relay of agent messages to JobDOs, cancel.
import { DurableObject } from "cloudflare:workers";
import {
  type AgentToServer,
  AgentToServerSchema,
  type Capability,
  type ExecutionSpec,
  type FencedAgentMessage,
  getAction,
  PROTOCOL_VERSION,
  parseFrame,
  type ServerToAgent,
} from "../../protocol/index.ts";
import { type Config, loadConfig } from "../config.ts";
import { getDb, setWorkerStatus, touchWorker, upsertWorker } from "../ledger/store.ts";
import { errorMessage, log } from "../lib/log.ts";
import { type AgentProfile, AssignmentBook, chooseAgent } from "./assignments.ts";
import { jobStub } from "./registry-stub.ts";

interface Attachment {
  agentId: string;
  name: string;
  profile: AgentProfile | null;
  /** The agent said it is stopping: it is offered nothing more. */
  draining?: boolean;
  /** When its last heartbeat (or hello) arrived, ms since the epoch. */
  lastHeartbeatAt?: number;
}

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
  private readonly book: AssignmentBook;
  private readonly config: Config;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.book = new AssignmentBook(ctx.storage.sql);
    this.config = loadConfig(env);
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

  async assign(spec: ExecutionSpec, leaseToken: string): Promise<"offered" | "pending"> {
    this.book.addPending(spec, leaseToken);
    const offered = await this.pump();
    return offered.includes(spec.jobId) ? "offered" : "pending";
  }

  async cancel(jobId: string, attempt: number, reason: string): Promise<void> {
    const entry = this.book.get(jobId);
    if (!entry || entry.attempt !== attempt) return;
    this.book.remove(jobId);
    if (entry.state !== "pending") {
      this.send(entry.agentId, { type: "job_cancel", jobId, attempt, reason });
      await this.pump();
    }
  }

  async listAgents(): Promise<AgentInfo[]> {
    const draining = new Set(
      this.attachments(true)
        .filter((a) => a.draining)
        .map((a) => a.agentId),
    );
    return this.profiles(true).map((p) => ({
      ...p,
      running: this.book.loadOf(p.agentId),
      draining: draining.has(p.agentId),
    }));
  }

  async agentSelf(agentId: string): Promise<AgentSelfView> {
    const att = this.attachments(true).find((a) => a.agentId === agentId);
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

  // ---- WebSocket handlers ------------------------------------------------------------------------

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    const att = ws.deserializeAttachment() as Attachment | null;
    if (!att) return ws.close(4002, "unknown connection");
    const parsed = parseFrame(AgentToServerSchema, raw);
    if (!parsed.ok) return this.reply(ws, { type: "error", code: "bad_message", message: parsed.error });
    const msg = parsed.message;
    if (msg.type === "hello") return this.onHello(ws, att, msg);
    if (!att.profile) return this.reply(ws, { type: "error", code: "hello_first", message: "send hello first" });
    try {
      switch (msg.type) {
        case "heartbeat":
          ws.serializeAttachment({ ...att, lastHeartbeatAt: Date.now() } satisfies Attachment);
          await this.onHeartbeat(ws, att.agentId, msg.running);
          return;
        case "draining":
          ws.serializeAttachment({ ...att, draining: true } satisfies Attachment);
          log("info", "agent draining", { agentId: att.agentId });
          return;
        case "resume":
          await this.onHeartbeat(ws, att.agentId, msg.running, true);
          await this.pump();
          return;
        default:
          await this.relay(ws, att.agentId, msg);
      }
    } catch (err) {
      log("error", "agent message failed", { agentId: att.agentId, type: msg.type, error: errorMessage(err) });
      this.reply(ws, { type: "error", code: "internal", message: "the server could not process that message" });
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
    await this.onGone(ws);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    await this.onGone(ws);
  }

  override async alarm(): Promise<void> {
    for (const offer of this.book.expiredOffers(Date.now())) {
      log("warn", "job offer timed out", { jobId: offer.jobId, agentId: offer.agentId, attempt: offer.attempt });
      this.book.backToPending(offer.jobId, offer.agentId);
    }
    await this.pump();
  }

  // ---- internals ----------------------------------------------------------------------------------

  private async onHello(ws: WebSocket, att: Attachment, msg: Extract<AgentToServer, { type: "hello" }>): Promise<void> {
    if (msg.protocolVersion !== PROTOCOL_VERSION) {
      this.reply(ws, {
        type: "error",
        code: "protocol_version",
        message: `server speaks protocol ${PROTOCOL_VERSION}`,
      });
      return ws.close(4003, "protocol version mismatch");
    }
    const capabilities = msg.capabilities.filter((c) => c !== "shell" || msg.allowShell);
    const profile: AgentProfile = {
      agentId: att.agentId,
      name: msg.agentName,
      capabilities,
      workspaces: msg.workspaces,
      maxConcurrency: msg.maxConcurrency,
      allowShell: msg.allowShell,
      version: msg.agentVersion,
    };
    ws.serializeAttachment({ ...att, profile, lastHeartbeatAt: Date.now() } satisfies Attachment);
    const now = Date.now();
    await upsertWorker(getDb(this.env.DB), {
      id: att.agentId,
      name: msg.agentName,
      capabilities,
      workspaces: msg.workspaces,
      status: "ONLINE",
      running: this.book.loadOf(att.agentId),
      maxConcurrency: msg.maxConcurrency,
      version: msg.agentVersion,
      at: now,
    }).catch((err: unknown) =>
      log("warn", "ledger: worker upsert failed", { agentId: att.agentId, error: errorMessage(err) }),
    );
    log("info", "agent online", { agentId: att.agentId, name: msg.agentName, workspaces: msg.workspaces });
    this.reply(ws, {
      type: "welcome",
      agentId: att.agentId,
      protocolVersion: PROTOCOL_VERSION,
      heartbeatIntervalS: this.config.heartbeatIntervalS,
      leaseS: this.config.leaseS,
    });
    await this.pump();
  }

  private async onHeartbeat(
    ws: WebSocket,
    agentId: string,
    running: { jobId: string; attempt: number; leaseToken: string }[],
    resuming = false,
  ): Promise<void> {
    await touchWorker(getDb(this.env.DB), agentId, Date.now(), this.book.loadOf(agentId)).catch(() => undefined);
    for (const r of running) {
      const res = await jobStub(this.env, r.jobId).renewLease(agentId, r.attempt, r.leaseToken);
      if (res.ok) {
        if (resuming) this.book.markRunning(r.jobId, agentId, r.attempt, r.leaseToken);
      } else {
        this.reply(ws, { type: "job_cancel", jobId: r.jobId, attempt: r.attempt, reason: res.message });
      }
    }
  }

  private async relay(ws: WebSocket, agentId: string, msg: FencedAgentMessage): Promise<void> {
    const entry = this.book.get(msg.jobId);
    if (msg.type === "job_reject") {
      if (entry && entry.state !== "pending" && entry.agentId === agentId && entry.attempt === msg.attempt) {
        log("info", "agent rejected job", { agentId, jobId: msg.jobId, reason: msg.reason });
        this.book.backToPending(msg.jobId, agentId);
        await this.pump();
      }
      return;
    }
    const res = await jobStub(this.env, msg.jobId).agentMessage(agentId, msg);
    if (!res.ok) {
      this.reply(ws, { type: "error", code: res.code, message: res.message, jobId: msg.jobId, attempt: msg.attempt });
      if (msg.type === "job_accept" && entry && entry.state !== "pending" && entry.agentId === agentId)
        this.book.remove(msg.jobId);
      return;
    }
    if (msg.type === "job_accept") {
      this.book.markRunning(msg.jobId, agentId, msg.attempt, msg.leaseToken);
      await this.mirrorLoad(agentId);
    }
    if (msg.type === "job_finished") {
      if (entry && entry.state !== "pending" && entry.agentId === agentId && entry.attempt === msg.attempt)
        this.book.remove(msg.jobId);
      await this.mirrorLoad(agentId);
      await this.pump();
    }
  }

  /** ONLINE or BUSY in the ledger's workers table, from the jobs the agent holds. */
  private async mirrorLoad(agentId: string): Promise<void> {
    const running = this.book.loadOf(agentId);
    await setWorkerStatus(getDb(this.env.DB), agentId, running > 0 ? "BUSY" : "ONLINE", {
      running,
      at: Date.now(),
    }).catch((err: unknown) => log("warn", "ledger: worker status failed", { agentId, error: errorMessage(err) }));
  }

  private async onGone(ws: WebSocket): Promise<void> {
    const att = ws.deserializeAttachment() as Attachment | null;
    if (!att) return;
    const stillConnected = this.ctx.getWebSockets(att.agentId).some((s) => s !== ws && s.readyState === WebSocket.OPEN);
    if (stillConnected) return;
    log("warn", "agent disconnected", { agentId: att.agentId });
    await setWorkerStatus(getDb(this.env.DB), att.agentId, "OFFLINE", { at: Date.now() }).catch(() => undefined);
    for (const a of this.book.ofAgent(att.agentId)) {
      if (a.state === "offered") this.book.backToPending(a.jobId, att.agentId);
      else await jobStub(this.env, a.jobId).agentDisconnected(att.agentId, a.attempt);
    }
    await this.pump();
  }

  /** The open sockets' attachments; a draining agent's only when asked for. */
  private attachments(includeDraining = false): Attachment[] {
    const out: Attachment[] = [];
    for (const ws of this.ctx.getWebSockets()) {
      const att = ws.deserializeAttachment() as Attachment | null;
      if (att && ws.readyState === WebSocket.OPEN && (includeDraining || !att.draining)) out.push(att);
    }
    return out;
  }

  /** Agents that may be offered jobs (a draining one may not), unless includeDraining. */
  private profiles(includeDraining = false): AgentProfile[] {
    const out = new Map<string, AgentProfile>();
    for (const att of this.attachments(includeDraining)) if (att.profile) out.set(att.agentId, att.profile);
    return [...out.values()];
  }

  /** Offers every pending job it can; returns the job ids offered. */
  private async pump(): Promise<string[]> {
    const offered: string[] = [];
    const agents = this.profiles();
    // Loads are read once and kept up to date here: one query per pump, not one per job and agent.
    const loads = this.book.loads();
    const load = (id: string) => loads.get(id) ?? 0;
    for (const job of this.book.pending()) {
      if (!agents.some((a) => load(a.agentId) < a.maxConcurrency)) break; // every slot is taken
      const required = new Set<Capability>(
        job.spec.steps.map((s) => getAction(s.action)?.capability).filter((c): c is Capability => !!c),
      );
      const agent = chooseAgent(job.spec, required, agents, load, job.rejectedBy);
      if (!agent) continue;
      this.book.offer(job.jobId, agent.agentId, Date.now() + this.config.acceptTimeoutS * 1000);
      loads.set(agent.agentId, load(agent.agentId) + 1);
      this.send(agent.agentId, {
        type: "job_offer",
        jobId: job.jobId,
        attempt: job.attempt,
        leaseToken: job.leaseToken,
        spec: job.spec,
      });
      offered.push(job.jobId);
    }
    const next = this.book.nextDeadline();
    if (next !== null) await this.ctx.storage.setAlarm(next);
    return offered;
  }

  private send(agentId: string, msg: ServerToAgent): void {
    for (const ws of this.ctx.getWebSockets(agentId)) this.reply(ws, msg);
  }

  private reply(ws: WebSocket, msg: ServerToAgent): void {
    try {
      ws.send(JSON.stringify(msg));
    } catch (err) {
      log("warn", "send to agent failed", { error: errorMessage(err) });
    }
  }
}
