// An agent's session with the registry: its hello (protocol check, profile, ledger row), its
// heartbeats (lease renewals, jobs it no longer runs), draining, and its going away (offers
// taken back, running jobs told). Each change in the connected agents re-checks which waiting
// jobs no agent could take.
import { type AgentToServer, PROTOCOL_VERSION } from "../../protocol/index.ts";
import { errorMessage, log } from "../lib/log.ts";
import type { AgentProfile } from "./matching.ts";
import type { RegistryParts } from "./registry-parts.ts";
import type { Attachment } from "./sockets.ts";

type Running = { jobId: string; attempt: number; leaseToken: string }[];

export class Sessions {
  private readonly ctx: DurableObjectState;
  private readonly parts: RegistryParts;

  constructor(ctx: DurableObjectState, parts: RegistryParts) {
    this.ctx = ctx;
    this.parts = parts;
  }

  async hello(ws: WebSocket, att: Attachment, msg: Extract<AgentToServer, { type: "hello" }>): Promise<void> {
    if (msg.protocolVersion !== PROTOCOL_VERSION) {
      this.parts.sockets.reply(ws, {
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
    await this.parts.ledger.hello(profile, this.parts.book.loadOf(att.agentId));
    log("info", "agent online", { agentId: att.agentId, name: msg.agentName, workspaces: msg.workspaces });
    this.parts.sockets.reply(ws, {
      type: "welcome",
      agentId: att.agentId,
      protocolVersion: PROTOCOL_VERSION,
      heartbeatIntervalS: this.parts.config.heartbeatIntervalS,
      leaseS: this.parts.config.leaseS,
    });
    await this.parts.dispatcher.pump();
    await this.parts.dispatcher.notify();
  }

  async heartbeat(ws: WebSocket, att: Attachment, running: Running): Promise<void> {
    const beat = { ...att, lastHeartbeatAt: Date.now() } satisfies Attachment;
    ws.serializeAttachment(beat);
    await this.checkRunning(ws, beat, running, false);
  }

  /** The agent came back and lists what it still runs: those are its again, then it is offered more. */
  async resume(ws: WebSocket, att: Attachment, running: Running): Promise<void> {
    await this.checkRunning(ws, att, running, true);
    await this.parts.dispatcher.pump();
  }

  /** The agent is stopping: offered nothing more, so jobs only it could take say so. */
  async draining(ws: WebSocket, att: Attachment): Promise<void> {
    ws.serializeAttachment({ ...att, draining: true } satisfies Attachment);
    log("info", "agent draining", { agentId: att.agentId });
    await this.parts.dispatcher.notify();
  }

  /** A socket ended (close or error, whichever comes first; the other is ignored). */
  async ended(ws: WebSocket): Promise<void> {
    if (!this.parts.sockets.firstEnd(ws)) return;
    const att = ws.deserializeAttachment() as Attachment | null;
    if (!att) return;
    const stillConnected = this.ctx.getWebSockets(att.agentId).some((s) => s !== ws && s.readyState === WebSocket.OPEN);
    if (stillConnected) return;
    await this.gone(att.agentId, true);
  }

  /** No live socket for the agent: its offers go back (backed off), its running jobs get the grace. */
  async gone(agentId: string, writeLedger: boolean): Promise<void> {
    log("warn", "agent disconnected", { agentId });
    await this.parts.ledger.offline(agentId, writeLedger);
    for (const a of this.parts.book.ofAgent(agentId)) {
      if (a.state === "offered")
        await this.parts.dispatcher.offerEnded(a.jobId, agentId, a.attempt, { kind: "closed" });
      else await this.parts.jobs.call(a.jobId, (j) => j.agentDisconnected(agentId, a.attempt));
    }
    await this.parts.dispatcher.pump();
    await this.parts.dispatcher.notify();
  }

  private async checkRunning(ws: WebSocket, att: Attachment, running: Running, resuming: boolean): Promise<void> {
    const agentId = att.agentId;
    // Fewer jobs on the agent than last time: it has a free slot, so its backoffs end.
    if (await this.parts.ledger.heartbeat(agentId, this.parts.book.loadOf(agentId), running.length)) {
      this.parts.book.liftBackoffs(agentId);
      await this.parts.dispatcher.pump();
    }
    for (const r of running) {
      const res = await this.parts.jobs.call(r.jobId, (j) => j.renewLease(agentId, r.attempt, r.leaseToken));
      if (res.ok) {
        if (resuming) this.parts.book.markRunning(r.jobId, agentId, r.attempt, r.leaseToken);
        continue;
      }
      // The agent runs an attempt we still had waiting: its accept was lost with the connection,
      // so the offer was taken back with its lease. The agent stops it as stale (not cancelled:
      // it has no result to report) and the attempt is offered again at once, under a new lease.
      const entry = this.parts.book.get(r.jobId);
      if (resuming && entry && entry.state !== "running" && entry.attempt === r.attempt) {
        this.parts.sockets.reply(ws, {
          type: "error",
          code: "stale_lease",
          message: res.error.message,
          jobId: r.jobId,
          attempt: r.attempt,
        });
        this.parts.book.liftBackoffs(agentId);
        continue;
      }
      this.parts.sockets.reply(ws, {
        type: "job_cancel",
        jobId: r.jobId,
        attempt: r.attempt,
        reason: res.error.message,
      });
    }
    // Jobs we think run on this agent that it does not list: an agent that restarted has lost
    // them. The JobDO only acts on this for a job already unreachable, and only after a pause in
    // which a replayed result would still win (a finished job is not listed either).
    for (const a of this.parts.book.ofAgent(agentId)) {
      if (a.state !== "running" || running.some((r) => r.jobId === a.jobId && r.attempt === a.attempt)) continue;
      await this.parts.jobs
        .call(a.jobId, (j) => j.agentWithoutJob(agentId, a.attempt))
        .catch((err: unknown) => log("warn", "agentWithoutJob failed", { jobId: a.jobId, error: errorMessage(err) }));
    }
  }
}
