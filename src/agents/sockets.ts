// The registry's agent connections: who is connected (the hibernatable sockets' attachments),
// sending to them, and each connection's frame budget (size caps, rate limit, audited closing).
import type { ServerToAgent } from "../../protocol/index.ts";
import { appendAudit, getDb } from "../ledger/store.ts";
import { errorMessage, log } from "../lib/log.ts";
import {
  FRAME_BURST,
  FRAME_REFILL_PER_S,
  frameSize,
  MAX_FRAME_CHARS_AFTER_HELLO,
  MAX_FRAME_CHARS_BEFORE_HELLO,
  TokenBucket,
} from "./frame-budget.ts";
import type { AgentProfile } from "./matching.ts";

/** What a socket carries across hibernation. */
export interface Attachment {
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

export class Sockets {
  private readonly ctx: DurableObjectState;
  private readonly env: Env;
  private readonly buckets = new WeakMap<WebSocket, TokenBucket>();
  /** Sockets closed for their frames: nothing more they send is read. */
  readonly tripped = new WeakSet<WebSocket>();
  /** Sockets whose end was handled: close and error can both be delivered for one socket. */
  private readonly ended = new WeakSet<WebSocket>();

  constructor(ctx: DurableObjectState, env: Env) {
    this.ctx = ctx;
    this.env = env;
  }

  /** True the first time a socket's end is reported, false after. */
  firstEnd(ws: WebSocket): boolean {
    if (this.ended.has(ws)) return false;
    this.ended.add(ws);
    return true;
  }

  /** The open sockets' attachments; a draining agent's only when asked for. */
  attachments(includeDraining = false): Attachment[] {
    const out: Attachment[] = [];
    for (const ws of this.ctx.getWebSockets()) {
      const att = ws.deserializeAttachment() as Attachment | null;
      if (att && ws.readyState === WebSocket.OPEN && !this.tripped.has(ws) && (includeDraining || !att.draining))
        out.push(att);
    }
    return out;
  }

  /** Agents that may be offered jobs (a draining one may not), unless includeDraining. */
  profiles(includeDraining = false): AgentProfile[] {
    const out = new Map<string, AgentProfile>();
    for (const att of this.attachments(includeDraining)) if (att.profile) out.set(att.agentId, att.profile);
    return [...out.values()];
  }

  send(agentId: string, msg: ServerToAgent): void {
    for (const ws of this.ctx.getWebSockets(agentId)) this.reply(ws, msg);
  }

  reply(ws: WebSocket, msg: ServerToAgent): void {
    try {
      ws.send(JSON.stringify(msg));
    } catch (err) {
      log("warn", "send to agent failed", { error: errorMessage(err) });
    }
  }

  /** Size caps and the frame budget; a flood closes the socket (1008), logged and audited. */
  async withinBudget(ws: WebSocket, att: Attachment, raw: string | ArrayBuffer): Promise<boolean> {
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
  budgetFor(ws: WebSocket, frames: number): boolean {
    let bucket = this.buckets.get(ws);
    if (!bucket) {
      bucket = new TokenBucket();
      this.buckets.set(ws, bucket);
    }
    return bucket.take(Date.now(), frames);
  }

  async overBudget(ws: WebSocket, att: Attachment): Promise<void> {
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
}
