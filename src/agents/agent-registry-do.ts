// AgentRegistryDO: the agents' WebSockets (hibernation API), their capabilities and heartbeats,
// assignment of jobs to agents with accept timeouts and backoff, relay of agent messages to
// JobDOs, cancel, and the per-connection frame budget.
import { DurableObject } from "cloudflare:workers";
import {
  type AgentToServer,
  AgentToServerSchema,
  type BatchableMessage,
  type Capability,
  type ExecutionSpec,
  type FencedAgentMessage,
  getAction,
  type PermissionDecisionFrame,
  type PermissionRequestFrame,
  PROTOCOL_VERSION,
  parseFrame,
  type Result,
  type ServerToAgent,
} from "../../protocol/index.ts";
import { expirePermission, recordPermissionRequest } from "../coder/permissions.ts";
import { type Config, loadConfig } from "../config.ts";
import type { BatchRefusal } from "../jobs/agent-events.ts";
import type { FenceRefusal } from "../jobs/job-api.ts";
import type { OfferedLease } from "../jobs/lease.ts";
import { appendAudit, getDb } from "../ledger/store.ts";
import { errorMessage, log } from "../lib/log.ts";
import { meterObject } from "../lib/op-meter.ts";
import { AssignmentBook, type OfferFailure } from "./assignments.ts";
import {
  batchCost,
  FRAME_BURST,
  FRAME_REFILL_PER_S,
  frameSize,
  MAX_FRAME_CHARS_AFTER_HELLO,
  MAX_FRAME_CHARS_BEFORE_HELLO,
  TokenBucket,
} from "./frame-budget.ts";
import { type AgentProfile, chooseAgent, rejectIsPermanent, unavailableFor, whyUnservable } from "./matching.ts";
import { jobStub } from "./registry-stub.ts";
import { WorkerLedger } from "./worker-ledger.ts";

interface Attachment {
  agentId: string;
  name: string;
  profile: AgentProfile | null;
  /** The agent said it is stopping: it is offered nothing more. */
  draining?: boolean;
  /** When its last heartbeat (or hello) arrived, ms since the epoch. */
  lastHeartbeatAt?: number;
}

/** Close code for a connection over its frame budget (RFC 6455: policy violation). */
export const CLOSE_POLICY_VIOLATION = 1008;
export const CLOSE_TOO_BIG = 1009;
/** Close code for an agent the Sentinel declared OFFLINE (silent past the heartbeat timeout). */
export const CLOSE_MARKED_OFFLINE = 4004;

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
  private readonly buckets = new WeakMap<WebSocket, TokenBucket>();
  private readonly tripped = new WeakSet<WebSocket>();
  /** Sockets whose end was handled: close and error can both be delivered for one socket. */
  private readonly ended = new WeakSet<WebSocket>();
  private readonly ledger: WorkerLedger;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    [ctx, env] = meterObject(this, ctx, env);
    this.book = new AssignmentBook(ctx.storage.sql);
    this.config = loadConfig(env);
    this.ledger = new WorkerLedger(env, this.config.heartbeatTimeoutS);
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
    this.book.addPending(spec, leaseToken);
    const offered = await this.pump();
    const entry = this.book.get(spec.jobId);
    return offered.includes(spec.jobId) || entry?.state === "offered" ? "offered" : "pending";
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
      if (sockets.length > 0) await this.agentGone(agentId, false);
    }
    return closed;
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
    if (this.tripped.has(ws)) return;
    const att = ws.deserializeAttachment() as Attachment | null;
    if (!att) return ws.close(4002, "unknown connection");
    if (!(await this.withinBudget(ws, att, raw))) return;
    const parsed = parseFrame(AgentToServerSchema, raw);
    if (!parsed.ok) return this.reply(ws, { type: "error", code: "bad_message", message: parsed.error });
    const msg = parsed.message;
    if (msg.type === "hello") return this.onHello(ws, att, msg);
    if (!att.profile) return this.reply(ws, { type: "error", code: "hello_first", message: "send hello first" });
    try {
      switch (msg.type) {
        case "heartbeat":
          {
            const beat = { ...att, lastHeartbeatAt: Date.now() } satisfies Attachment;
            ws.serializeAttachment(beat);
            await this.onHeartbeat(ws, beat, msg.running);
          }
          return;
        case "draining":
          ws.serializeAttachment({ ...att, draining: true } satisfies Attachment);
          log("info", "agent draining", { agentId: att.agentId });
          return;
        case "resume":
          await this.onHeartbeat(ws, att, msg.running, true);
          await this.pump();
          return;
        case "permission_request":
          await this.onPermissionRequest(ws, att, msg);
          return;
        case "permission_expired":
          // Only the agent that asked can expire its request (checked against the stored row).
          await expirePermission(this.env, msg.requestId, {
            agentId: att.agentId,
            jobId: msg.jobId,
            attempt: msg.attempt,
          });
          return;
        case "batch":
          // The frame itself took one token on arrival; its contents pay the rest.
          if (!this.budgetFor(ws, Math.max(0, batchCost(msg.frames) - 1))) return this.overBudget(ws, att);
          await this.relayBatch(ws, att, msg.frames);
          return;
        default:
          await this.relay(ws, att, msg);
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
      await this.offerEnded(offer.jobId, offer.agentId, offer.attempt, { kind: "timeout" });
    }
    await this.pump();
  }

  // ---- internals ----------------------------------------------------------------------------------

  /** Size caps and the frame budget; a flood closes the socket (1008), logged and audited. */
  private async withinBudget(ws: WebSocket, att: Attachment, raw: string | ArrayBuffer): Promise<boolean> {
    const cap = att.profile ? MAX_FRAME_CHARS_AFTER_HELLO : MAX_FRAME_CHARS_BEFORE_HELLO;
    if (frameSize(raw) > cap) {
      this.tripped.add(ws);
      log("warn", "agent frame too large", { agentId: att.agentId, size: frameSize(raw), cap });
      this.reply(ws, { type: "error", code: "frame_too_large", message: `frames are limited to ${cap} characters` });
      ws.close(CLOSE_TOO_BIG, "frame too large");
      return false;
    }
    if (this.budgetFor(ws, 1)) return true;
    await this.overBudget(ws, att);
    return false;
  }

  /** Takes `frames` from the connection's budget: a batch counts by the frames it carries. */
  private budgetFor(ws: WebSocket, frames: number): boolean {
    let bucket = this.buckets.get(ws);
    if (!bucket) {
      bucket = new TokenBucket();
      this.buckets.set(ws, bucket);
    }
    return bucket.take(Date.now(), frames);
  }

  private async overBudget(ws: WebSocket, att: Attachment): Promise<void> {
    this.tripped.add(ws);
    log("warn", "agent over its frame budget: closing", { agentId: att.agentId });
    ws.close(CLOSE_POLICY_VIOLATION, "too many frames: rate limit exceeded");
    await appendAudit(getDb(this.env.DB), {
      actor: `agent:${att.agentId}`,
      action: "agent_rate_limited",
      detail: { name: att.name, burst: FRAME_BURST, refillPerSecond: FRAME_REFILL_PER_S },
      at: Date.now(),
    }).catch((err: unknown) => log("warn", "audit write failed", { error: errorMessage(err) }));
  }

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
    await this.ledger.hello(profile, this.book.loadOf(att.agentId));
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
    att: Attachment,
    running: { jobId: string; attempt: number; leaseToken: string }[],
    resuming = false,
  ): Promise<void> {
    const agentId = att.agentId;
    // Fewer jobs on the agent than last time: it has a free slot, so its backoffs end.
    if (await this.ledger.heartbeat(agentId, this.book.loadOf(agentId), running.length)) {
      this.book.liftBackoffs(agentId);
      await this.pump();
    }
    for (const r of running) {
      const res = await jobStub(this.env, r.jobId).renewLease(agentId, r.attempt, r.leaseToken);
      if (res.ok) {
        if (resuming) this.book.markRunning(r.jobId, agentId, r.attempt, r.leaseToken);
        continue;
      }
      // The agent runs an attempt we still had waiting: its accept was lost with the connection,
      // so the offer was taken back with its lease. The agent stops it as stale (not cancelled:
      // it has no result to report) and the attempt is offered again at once, under a new lease.
      const entry = this.book.get(r.jobId);
      if (resuming && entry && entry.state !== "running" && entry.attempt === r.attempt) {
        this.reply(ws, {
          type: "error",
          code: "stale_lease",
          message: res.error.message,
          jobId: r.jobId,
          attempt: r.attempt,
        });
        this.book.liftBackoffs(agentId);
        continue;
      }
      this.reply(ws, { type: "job_cancel", jobId: r.jobId, attempt: r.attempt, reason: res.error.message });
    }
    // Jobs we think run on this agent that it does not list: an agent that restarted has lost
    // them. The JobDO only acts on this for a job already unreachable, and only after a pause in
    // which a replayed result would still win (a finished job is not listed either).
    for (const a of this.book.ofAgent(agentId)) {
      if (a.state !== "running" || running.some((r) => r.jobId === a.jobId && r.attempt === a.attempt)) continue;
      await jobStub(this.env, a.jobId)
        .agentWithoutJob(agentId, a.attempt)
        .catch((err: unknown) => log("warn", "agentWithoutJob failed", { jobId: a.jobId, error: errorMessage(err) }));
    }
  }

  /**
   * A coding agent's permission request is taken only from the agent running that attempt under
   * its current lease (fencing): a stale attempt's request is refused, so no one is asked for it.
   */
  private async onPermissionRequest(ws: WebSocket, att: Attachment, msg: PermissionRequestFrame): Promise<void> {
    const entry = this.book.get(msg.jobId);
    const current =
      entry?.state === "running" &&
      entry.agentId === att.agentId &&
      entry.attempt === msg.attempt &&
      entry.leaseToken === msg.leaseToken;
    const deny = (reason: string) =>
      this.reply(ws, {
        type: "permission_decision",
        jobId: msg.jobId,
        attempt: msg.attempt,
        requestId: msg.requestId,
        decision: "deny",
        reason,
      });
    if (!current) return deny("this attempt no longer holds the job's lease");
    if (!(await recordPermissionRequest(this.env, att.agentId, msg))) return deny("unknown job");
  }

  /** Sends a requester's decision to the agent running that attempt (nothing if it is gone). */
  async sendPermissionDecision(frame: PermissionDecisionFrame): Promise<boolean> {
    const entry = this.book.get(frame.jobId);
    if (entry?.state !== "running" || entry.attempt !== frame.attempt) return false;
    this.send(entry.agentId, frame);
    return true;
  }

  private async relay(ws: WebSocket, att: Attachment, msg: FencedAgentMessage): Promise<void> {
    const agentId = att.agentId;
    const entry = this.book.get(msg.jobId);
    if (msg.type === "job_reject") {
      // Only an outstanding offer can be turned down; a job the agent already runs stays its own.
      if (entry?.state === "offered" && entry.agentId === agentId && entry.attempt === msg.attempt) {
        log("info", "agent rejected job", { agentId, jobId: msg.jobId, reason: msg.reason });
        await this.offerEnded(msg.jobId, agentId, msg.attempt, { kind: "refused", reason: msg.reason });
        if (rejectIsPermanent(msg.reason)) {
          const name = att.profile?.name ?? att.name;
          await this.tellJob(msg.jobId, msg.attempt, `agent ${name} cannot run this job: ${msg.reason}`);
        }
        await this.pump();
      }
      return;
    }
    const res = await jobStub(this.env, msg.jobId).agentMessage(agentId, msg, att.profile?.name ?? att.name);
    await this.settle(ws, agentId, entry, [msg], res.ok ? null : { ...res.error, index: 0 });
  }

  /**
   * A batch of one attempt's frames goes to its JobDO in one call that applies them in order;
   * the agent hears which frame was refused (none after it was applied).
   */
  private async relayBatch(ws: WebSocket, att: Attachment, frames: BatchableMessage[]): Promise<void> {
    const [first] = frames;
    if (!first) return;
    const entry = this.book.get(first.jobId);
    const res = await jobStub(this.env, first.jobId).agentBatch(att.agentId, frames, att.profile?.name ?? att.name);
    await this.settle(ws, att.agentId, entry, frames, res.ok ? null : res.error);
  }

  /** The registry's side of frames the JobDO applied (all, or those before `refusal.index`). */
  private async settle(
    ws: WebSocket,
    agentId: string,
    entry: ReturnType<AssignmentBook["get"]>,
    frames: BatchableMessage[],
    refusal: BatchRefusal | null,
  ): Promise<void> {
    const applied = refusal ? frames.slice(0, refusal.index) : frames;
    const refusedFrame = refusal ? frames[refusal.index] : undefined;
    const ours = (attempt: number) =>
      !!entry && entry.state !== "pending" && entry.agentId === agentId && entry.attempt === attempt;
    // Finished (or refused as stale): either way the agent has a slot again.
    if (frames.some((f) => f.type === "job_finished")) this.book.liftBackoffs(agentId);
    const accept = applied.find((f) => f.type === "job_accept");
    if (accept) this.book.markRunning(accept.jobId, agentId, accept.attempt, accept.leaseToken);
    const finished = applied.find((f) => f.type === "job_finished");
    if (finished && ours(finished.attempt)) this.book.remove(finished.jobId);
    if (refusal && refusedFrame) {
      const { code, message, index } = refusal;
      const frameIndex = frames.length > 1 ? { frameIndex: index } : {};
      this.reply(ws, {
        type: "error",
        code,
        message,
        jobId: refusedFrame.jobId,
        attempt: refusedFrame.attempt,
        ...frameIndex,
      });
      // A refused accept ends that offer's entry only: a replayed accept of an older attempt, or
      // one under the lease of an offer already taken back, must not drop the offer made since.
      if (
        refusedFrame.type === "job_accept" &&
        ours(refusedFrame.attempt) &&
        entry?.leaseToken === refusedFrame.leaseToken
      )
        this.book.remove(refusedFrame.jobId);
    }
    if (accept || finished) await this.mirrorLoad(agentId);
    if (finished || refusedFrame?.type === "job_finished") await this.pump();
  }

  private async mirrorLoad(agentId: string): Promise<void> {
    await this.ledger.load(agentId, this.book.loadOf(agentId));
  }

  /** A socket ended (close or error, whichever comes first; the other is ignored). */
  private async onGone(ws: WebSocket): Promise<void> {
    if (this.ended.has(ws)) return;
    this.ended.add(ws);
    const att = ws.deserializeAttachment() as Attachment | null;
    if (!att) return;
    const stillConnected = this.ctx.getWebSockets(att.agentId).some((s) => s !== ws && s.readyState === WebSocket.OPEN);
    if (stillConnected) return;
    await this.agentGone(att.agentId, true);
  }

  /** No live socket for the agent: its offers go back (backed off), its running jobs get the grace. */
  private async agentGone(agentId: string, writeLedger: boolean): Promise<void> {
    log("warn", "agent disconnected", { agentId });
    await this.ledger.offline(agentId, writeLedger);
    for (const a of this.book.ofAgent(agentId)) {
      if (a.state === "offered") await this.offerEnded(a.jobId, agentId, a.attempt, { kind: "closed" });
      else await jobStub(this.env, a.jobId).agentDisconnected(agentId, a.attempt);
    }
    await this.pump();
  }

  /** The open sockets' attachments; a draining agent's only when asked for. */
  private attachments(includeDraining = false): Attachment[] {
    const out: Attachment[] = [];
    for (const ws of this.ctx.getWebSockets()) {
      const att = ws.deserializeAttachment() as Attachment | null;
      if (att && ws.readyState === WebSocket.OPEN && !this.tripped.has(ws) && (includeDraining || !att.draining))
        out.push(att);
    }
    return out;
  }

  /** Agents that may be offered jobs (a draining one may not), unless includeDraining. */
  private profiles(includeDraining = false): AgentProfile[] {
    const out = new Map<string, AgentProfile>();
    for (const att of this.attachments(includeDraining)) if (att.profile) out.set(att.agentId, att.profile);
    return [...out.values()];
  }

  /**
   * Offers every pending job it can to a connected agent with the project, the capabilities and
   * a free slot, not excluded or backed off for it. A job no connected agent could ever take
   * tells its requester why, once per reason. Returns the job ids offered.
   */
  private async pump(): Promise<string[]> {
    const offered: string[] = [];
    const notices: { jobId: string; attempt: number; text: string }[] = [];
    const agents = this.profiles();
    // Loads are read once and kept up to date here: one query per pump, not one per job and agent.
    const loads = this.book.loads();
    const load = (id: string) => loads.get(id) ?? 0;
    const now = Date.now();
    for (const job of this.book.pending()) {
      const required = new Set<Capability>(
        job.spec.steps.map((s) => getAction(s.action)?.capability).filter((c): c is Capability => !!c),
      );
      const why = whyUnservable(job, required, agents);
      if (why !== null && why !== job.notice) {
        this.book.setNotice(job.jobId, why);
        notices.push({ jobId: job.jobId, attempt: job.attempt, text: why });
      }
      if (why !== null || !agents.some((a) => load(a.agentId) < a.maxConcurrency)) continue;
      // Rows were read up front and an earlier grant awaited: only a job still waiting is offered.
      const current = this.book.get(job.jobId);
      if (current?.state !== "pending" || current.attempt !== job.attempt) continue;
      const agent = chooseAgent(job.spec, required, agents, load, unavailableFor(job, now));
      if (!agent) continue;
      // Reserved before the grant is awaited, so a pump running meanwhile does not offer it too.
      this.book.offer(job.jobId, agent.agentId, now + this.config.acceptTimeoutS * 1000);
      loads.set(agent.agentId, load(agent.agentId) + 1);
      const lease = await this.grantLease(job.jobId, agent.agentId, job.attempt);
      if (lease) {
        this.send(agent.agentId, {
          type: "job_offer",
          jobId: job.jobId,
          attempt: job.attempt,
          leaseToken: lease.leaseToken,
          lease: { agentId: agent.agentId, expiresAt: lease.expiresAt },
          spec: job.spec,
        });
        offered.push(job.jobId);
      }
    }
    const next = this.book.nextDeadline(now);
    if (next !== null) await this.ctx.storage.setAlarm(next);
    for (const n of notices) {
      if (!(await this.tellJob(n.jobId, n.attempt, n.text))) this.book.setNotice(n.jobId, null);
    }
    return offered;
  }

  /**
   * Asks the job for the lease this offer carries; null when the offer must not go out. The
   * job no longer waiting drops the entry; a job out of reach puts it back, retried by the alarm.
   * An entry that changed while the grant was awaited (the agent left, the job was cancelled)
   * hands the lease straight back.
   */
  private async grantLease(jobId: string, agentId: string, attempt: number): Promise<OfferedLease | null> {
    const stillOurs = () => {
      const e = this.book.get(jobId);
      return e?.state === "offered" && e.agentId === agentId && e.attempt === attempt;
    };
    let res: Result<OfferedLease, FenceRefusal>;
    try {
      res = await jobStub(this.env, jobId).offerLease(agentId, attempt);
    } catch (err) {
      log("warn", "lease grant failed; the offer waits", { jobId, agentId, error: errorMessage(err) });
      if (stillOurs()) this.book.offerFailed(jobId, agentId, { kind: "timeout" });
      return null;
    }
    if (!res.ok) {
      log("info", "job not offered: its attempt is not waiting", { jobId, attempt, reason: res.error.message });
      if (stillOurs()) this.book.remove(jobId);
      return null;
    }
    if (!stillOurs()) {
      await this.takeBack(jobId, agentId, attempt);
      return null;
    }
    this.book.setLeaseToken(jobId, res.value.leaseToken);
    return res.value;
  }

  /** The offer failed (refused, timed out, socket closed): back to waiting, its lease taken back. */
  private async offerEnded(jobId: string, agentId: string, attempt: number, failure: OfferFailure): Promise<void> {
    this.book.offerFailed(jobId, agentId, failure);
    await this.takeBack(jobId, agentId, attempt);
  }

  /** The job takes back a lease it granted with an offer; the re-offer grants a new one anyway. */
  private async takeBack(jobId: string, agentId: string, attempt: number): Promise<void> {
    await jobStub(this.env, jobId)
      .takeBackLease(agentId, attempt)
      .catch((err: unknown) => log("warn", "lease take-back failed", { jobId, agentId, error: errorMessage(err) }));
  }

  /** A notice to the job's requester (a job event and a notification); false if it did not get there. */
  private async tellJob(jobId: string, attempt: number, text: string): Promise<boolean> {
    try {
      await jobStub(this.env, jobId).waitingNotice(attempt, text);
      return true;
    } catch (err) {
      log("warn", "job notice failed", { jobId, error: errorMessage(err) });
      return false;
    }
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
