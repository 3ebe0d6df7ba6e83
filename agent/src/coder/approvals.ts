// The agent's side of the approval relay: a tool call the coding agent wants is sent up as a
// fenced permission_request and waits for the matching permission_decision. The agent is
// authoritative on the timeout: when it passes the call is denied here, whatever comes later, and
// the expiry is reported up.
// A request that cannot be sent (offline) is denied at once: nothing runs unasked.
import { randomBytes } from "node:crypto";
import {
  PERMISSION_TIMEOUT_S,
  type PermissionDecision,
  type PermissionDecisionFrame,
  type PermissionExpiredFrame,
  type PermissionRequestFrame,
} from "../../../protocol/index.ts";
import type { ToolAsk } from "./policy.ts";
import type { Approver } from "./run.ts";

/** How long a coding agent's tool call waits for the requester (SKYNET_APPROVAL_TIMEOUT_S, bounded). */
export function approvalTimeoutS(): number {
  const n = Number(process.env.SKYNET_APPROVAL_TIMEOUT_S);
  if (!Number.isInteger(n)) return PERMISSION_TIMEOUT_S.default;
  return Math.min(PERMISSION_TIMEOUT_S.max, Math.max(PERMISSION_TIMEOUT_S.min, n));
}

type Decided = { decision: PermissionDecision; reason?: string };

export class ApprovalRelay {
  private readonly waiting = new Map<string, { jobId: string; attempt: number; done: (d: Decided) => void }>();

  private readonly sendUp: (frame: PermissionRequestFrame | PermissionExpiredFrame) => boolean;
  private readonly timeoutS: number;

  constructor(
    sendUp: (frame: PermissionRequestFrame | PermissionExpiredFrame) => boolean,
    timeoutS: number = PERMISSION_TIMEOUT_S.default,
  ) {
    this.sendUp = sendUp;
    this.timeoutS = timeoutS;
  }

  /** The approver for one running step. */
  approverFor(fence: { jobId: string; attempt: number; leaseToken: string }, stepId: string): Approver {
    return (ask: ToolAsk, signal: AbortSignal) => this.ask(fence, stepId, ask, signal);
  }

  private ask(
    fence: { jobId: string; attempt: number; leaseToken: string },
    stepId: string,
    ask: ToolAsk,
    signal: AbortSignal,
  ): Promise<Decided> {
    // "pr_": never mistaken for a job id (job_…), e.g. by the CLI's `deny <id>`.
    const requestId = `pr_${randomBytes(12).toString("base64url")}`;
    return new Promise<Decided>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (d: Decided) => {
        if (!this.waiting.delete(requestId)) return;
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        resolve(d);
      };
      const onAbort = () => finish({ decision: "deny", reason: "the step was stopped" });
      this.waiting.set(requestId, { jobId: fence.jobId, attempt: fence.attempt, done: finish });
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      timer = setTimeout(() => {
        finish({ decision: "deny", reason: `no answer within ${this.timeoutS} s` });
        // Said up at once, so the request reads expired (and its buttons go) now, not when someone
        // next presses; if offline, the Sentinel's sweep expires it past its deadline.
        this.sendUp({ type: "permission_expired", jobId: fence.jobId, attempt: fence.attempt, requestId });
      }, this.timeoutS * 1000);
      timer.unref();
      const sent = this.sendUp({
        type: "permission_request",
        // Picked one by one: the caller's object may be the whole running job.
        jobId: fence.jobId,
        attempt: fence.attempt,
        leaseToken: fence.leaseToken,
        stepId,
        requestId,
        tool: ask.tool,
        kind: ask.kind,
        target: ask.target,
        ...(ask.preview ? { preview: ask.preview } : {}),
        timeoutS: this.timeoutS,
      });
      if (!sent) finish({ decision: "deny", reason: "the server could not be asked (offline)" });
    });
  }

  /** A decision from the server; one for another job or attempt, or already settled, is ignored. */
  onDecision(frame: PermissionDecisionFrame): void {
    const w = this.waiting.get(frame.requestId);
    if (!w || w.jobId !== frame.jobId || w.attempt !== frame.attempt) return;
    w.done({ decision: frame.decision, ...(frame.reason ? { reason: frame.reason } : {}) });
  }
}
