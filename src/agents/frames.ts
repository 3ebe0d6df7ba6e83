// An agent's job frames: each goes to its job's JobDO (a batch in one call that applies them in
// order), and the registry settles its own side from what the job applied: an accepted offer
// runs, a finished job frees its slot, a refused frame is answered. A turned-down offer and a
// coding agent's permission request are the registry's own to judge first.
import type {
  BatchableMessage,
  FencedAgentMessage,
  PermissionExpiredFrame,
  PermissionRequestFrame,
} from "../../protocol/index.ts";
import { expirePermission, recordPermissionRequest } from "../coder/permissions.ts";
import type { BatchRefusal } from "../jobs/agent-events.ts";
import { log } from "../lib/log.ts";
import { rejectIsPermanent } from "./matching.ts";
import type { RegistryParts } from "./registry-parts.ts";
import type { Attachment } from "./sockets.ts";

export class Frames {
  private readonly env: Env;
  private readonly parts: RegistryParts;

  constructor(env: Env, parts: RegistryParts) {
    this.env = env;
    this.parts = parts;
  }

  async relay(ws: WebSocket, att: Attachment, msg: FencedAgentMessage): Promise<void> {
    const agentId = att.agentId;
    const entry = this.parts.book.get(msg.jobId);
    if (msg.type === "job_reject") {
      // Only an outstanding offer can be turned down; a job the agent already runs stays its own.
      if (entry?.state === "offered" && entry.agentId === agentId && entry.attempt === msg.attempt) {
        log("info", "agent rejected job", { agentId, jobId: msg.jobId, reason: msg.reason });
        await this.parts.dispatcher.offerEnded(msg.jobId, agentId, msg.attempt, {
          kind: "refused",
          reason: msg.reason,
        });
        if (rejectIsPermanent(msg.reason)) {
          const name = att.profile?.name ?? att.name;
          await this.parts.dispatcher.tellJob(
            msg.jobId,
            msg.attempt,
            `agent ${name} cannot run this job: ${msg.reason}`,
          );
        }
        await this.parts.dispatcher.pump();
        // A permanent refusal may leave no connected agent willing to take it.
        const now = this.parts.book.get(msg.jobId);
        if (now?.state === "pending") await this.parts.dispatcher.notify([now]);
      }
      return;
    }
    if (msg.type === "job_accept" && !this.acceptable(agentId, msg)) return this.refuseAccept(ws, msg, null);
    const name = att.profile?.name ?? att.name;
    const res = await this.parts.jobs.call(msg.jobId, (j) => j.agentMessage(agentId, msg, name));
    await this.settle(ws, agentId, entry, [msg], res.ok ? null : { ...res.error, index: 0 });
  }

  /**
   * A batch of one attempt's frames goes to its JobDO in one call that applies them in order;
   * the agent hears which frame was refused (none after it was applied).
   */
  async relayBatch(ws: WebSocket, att: Attachment, frames: BatchableMessage[]): Promise<void> {
    const [first] = frames;
    if (!first) return;
    const entry = this.parts.book.get(first.jobId);
    const i = frames.findIndex((f) => f.type === "job_accept");
    const accept = frames[i];
    if (accept && !this.acceptable(att.agentId, accept)) {
      // The frames before it still go (as if the batch had been refused at the accept).
      if (i > 0) await this.relayBatch(ws, att, frames.slice(0, i));
      return this.refuseAccept(ws, accept, frames.length > 1 ? i : null);
    }
    const name = att.profile?.name ?? att.name;
    const res = await this.parts.jobs.call(first.jobId, (j) => j.agentBatch(att.agentId, frames, name));
    await this.settle(ws, att.agentId, entry, frames, res.ok ? null : res.error);
  }

  /**
   * An accept under the token the book holds is taken only from the agent that attempt was
   * offered to (or runs on): the job binds its lease to the first accept under its token, so one
   * that leaked to another agent is refused here, before it gets there. Any other accept (an old
   * attempt's, a taken-back offer's) goes on to the job, whose answer is the precise one.
   */
  private acceptable(agentId: string, f: BatchableMessage): boolean {
    const e = this.parts.book.get(f.jobId);
    if (!e || e.attempt !== f.attempt || e.leaseToken !== f.leaseToken) return true;
    return e.state !== "pending" && e.agentId === agentId;
  }

  private refuseAccept(ws: WebSocket, f: BatchableMessage, index: number | null): void {
    this.parts.sockets.reply(ws, {
      type: "error",
      code: "stale_lease",
      message: `attempt ${f.attempt} of ${f.jobId} is not offered to this agent`,
      jobId: f.jobId,
      attempt: f.attempt,
      ...(index === null ? {} : { frameIndex: index }),
    });
  }

  /**
   * A coding agent's permission request is taken only from the agent running that attempt under
   * its current lease (fencing): a stale attempt's request is refused, so no one is asked for it.
   */
  async permissionRequest(ws: WebSocket, att: Attachment, msg: PermissionRequestFrame): Promise<void> {
    const entry = this.parts.book.get(msg.jobId);
    const current =
      entry?.state === "running" &&
      entry.agentId === att.agentId &&
      entry.attempt === msg.attempt &&
      entry.leaseToken === msg.leaseToken;
    const deny = (reason: string) =>
      this.parts.sockets.reply(ws, {
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

  /** Only the agent that asked can expire its request (checked against the stored row). */
  async permissionExpired(att: Attachment, msg: PermissionExpiredFrame): Promise<void> {
    await expirePermission(this.env, msg.requestId, { agentId: att.agentId, jobId: msg.jobId, attempt: msg.attempt });
  }

  /** The registry's side of frames the JobDO applied (all, or those before `refusal.index`). */
  private async settle(
    ws: WebSocket,
    agentId: string,
    entry: ReturnType<RegistryParts["book"]["get"]>,
    frames: BatchableMessage[],
    refusal: BatchRefusal | null,
  ): Promise<void> {
    const applied = refusal ? frames.slice(0, refusal.index) : frames;
    const refusedFrame = refusal ? frames[refusal.index] : undefined;
    const ours = (attempt: number) =>
      !!entry && entry.state !== "pending" && entry.agentId === agentId && entry.attempt === attempt;
    // Finished (or refused as stale): either way the agent has a slot again.
    if (frames.some((f) => f.type === "job_finished")) this.parts.book.liftBackoffs(agentId);
    const accept = applied.find((f) => f.type === "job_accept");
    const finished = applied.find((f) => f.type === "job_finished");
    // Accepted and finished in one batch (a short job): the entry goes, never written as running
    // (the job took both from this agent, whatever the book said of the offer meanwhile).
    const both = !!accept && !!finished && accept.attempt === finished.attempt;
    if (accept && !both) this.parts.book.markRunning(accept.jobId, agentId, accept.attempt, accept.leaseToken);
    if (finished && (ours(finished.attempt) || (both && entry?.attempt === finished.attempt)))
      this.parts.book.remove(finished.jobId);
    if (refusal && refusedFrame) {
      const { code, message, index } = refusal;
      const frameIndex = frames.length > 1 ? { frameIndex: index } : {};
      this.parts.sockets.reply(ws, {
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
        this.parts.book.remove(refusedFrame.jobId);
    }
    if (accept || finished) await this.parts.ledger.load(agentId, this.parts.book.loadOf(agentId));
    if (finished || refusedFrame?.type === "job_finished") await this.parts.dispatcher.pump();
  }
}
