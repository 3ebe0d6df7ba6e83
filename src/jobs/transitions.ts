// The job's state changes as functions of its state: each applies state-machine events and
// returns the effects to commit with it. The caller commits (JobContext.commit).
import { type ExecutionResult, isTerminal, maxRisk } from "../../protocol/index.ts";
import type { Config } from "../config.ts";
import { buildExecutionSpec } from "../core/dispatcher.ts";
import { type JobEvent, transition } from "../core/job-machine.ts";
import { validateExecutionSpec } from "../core/policy.ts";
import { measureFor } from "../ledger/metric-counters.ts";
import { randomHex } from "../lib/crypto.ts";
import { log } from "../lib/log.ts";
import type { JobContext } from "./job-context.ts";
import { type JobState, stepsFromSpec } from "./job-state.ts";
import type { OutboxItem } from "./outbox-items.ts";

type Rules = Pick<JobContext, "move" | "config" | "now">;

/** Applies a state-machine event at `now`; throws on an illegal one (callers check first). */
export function move(
  state: JobState,
  event: JobEvent,
  detail: Record<string, unknown> | null,
  now: number,
): OutboxItem[] {
  const from = state.status;
  const t = transition(from, event);
  if (!t.ok) throw new Error(t.error);
  const to = t.value;
  state.status = to;
  state.eventSeq += 1;
  // Any real change of status ends what the requester was told to wait for.
  if (to !== from) {
    state.notice = null;
    state.unreachableSince = null;
    state.withoutJobAt = null;
  }
  if (isTerminal(to)) state.finishedAt = now;
  log("info", "job transition", { jobId: state.id, from, to: to, event, attempt: state.attempt });
  const lastAt = state.lastAtByStatus ?? {
    ...(state.queuedAt !== null ? { QUEUED: state.queuedAt } : {}),
    ...(state.startedAt !== null ? { RUNNING: state.runningAt ?? state.startedAt } : {}),
  };
  // Measured from when the job entered the status it leaves: an event that keeps the status
  // (`waiting` for an agent, `reachable` again) is no new start. States from before `enteredAt`
  // was kept measure from their latest event, as they always did.
  const entered = state.enteredAt ?? lastAt;
  const measure = measureFor(to, now, entered);
  state.lastAtByStatus = { ...lastAt, [to]: now };
  if (to !== from || entered[to] === undefined) state.enteredAt = { ...entered, [to]: now };
  else if (!state.enteredAt) state.enteredAt = { ...entered };
  const effects: OutboxItem[] = [
    { kind: "event", seq: state.eventSeq, fromStatus: from, toStatus: to, event, detail, at: now, measure },
    // A job that ended gets its answer before the notification that tells it.
    ...(isTerminal(to) && from !== to ? [{ kind: "answer" } as const] : []),
    { kind: "notify" },
  ];
  if (isTerminal(to)) effects.push({ kind: "archive_log" });
  return effects;
}

/**
 * May the current attempt have reached the registry (so an agent may hold it and must be told)?
 * The hand-over mark is stored lazily (dispatch.ts): after a restart it may be missing although
 * the registry has the attempt, so any attempt queued with its token counts. A cancel of an
 * attempt the registry never got changes nothing there.
 */
const dispatched = (state: JobState): boolean =>
  state.attempt > 0 && (state.leaseToken !== null || state.dispatchedAttempt === state.attempt);

/** A job that ends while QUEUED never ran: a lease granted with an offer not yet accepted ends unheld. */
function dropOfferedLease(state: JobState): void {
  if (state.status === "QUEUED") state.lease = null;
}

/** Moves a non-terminal job to CANCELLED and, if an agent may hold it, tells the agent. */
export function cancelEffects(job: Rules, state: JobState, reason: string): OutboxItem[] {
  const hadDispatch = dispatched(state);
  dropOfferedLease(state);
  state.error = reason;
  // The lease ends with the job, so the agent's own report of the killed step will be refused:
  // a step that was running is recorded as cancelled here (its exit code stays unknown).
  for (const step of state.steps) {
    if (step.state !== "running") continue;
    step.state = "cancelled";
    step.error = reason;
  }
  const effects = job.move(state, "cancel", { reason });
  if (hadDispatch) effects.push({ kind: "cancel_agent", attempt: state.attempt, reason });
  return effects;
}

export function failEffects(job: Rules, state: JobState, reason: string): OutboxItem[] {
  const hadDispatch = dispatched(state);
  dropOfferedLease(state);
  state.error = reason;
  const effects = job.move(state, "fail", { reason });
  if (hadDispatch) effects.push({ kind: "cancel_agent", attempt: state.attempt, reason });
  return effects;
}

/** PLANNED (approve) or RUNNING (requeue) → QUEUED with a new attempt and an execution spec. */
export function dispatchFromPlan(job: Rules, state: JobState, event: "approve" | "requeue"): OutboxItem[] {
  if (!state.plan) return failEffects(job, state, "no plan to dispatch");
  const attempt = state.attempt + 1;
  const built = buildExecutionSpec(state.plan, {
    attempt,
    projectId: state.projectId,
    jobTimeoutS: job.config.jobTimeoutS,
  });
  const checked = built.ok ? validateExecutionSpec(built.value) : built;
  if (!built.ok || !checked.ok) {
    return failEffects(job, state, `dispatch refused: ${built.ok ? (checked.ok ? "" : checked.error) : built.error}`);
  }
  const effects = job.move(state, event, { attempt });
  state.attempt = attempt;
  state.spec = built.value;
  state.steps = stepsFromSpec(built.value, state.plan);
  // The offers' token is minted here, in the commit that queues the attempt: the hand-over then
  // writes nothing (dispatch.ts), and an accept under it is valid whether or not the hand-over's
  // mark was stored.
  state.leaseToken = randomHex(24);
  state.lease = null;
  state.queuedAt = job.now();
  state.risk = maxRisk(...built.value.steps.map((s) => s.risk));
  effects.push({ kind: "enqueue", attempt });
  return effects;
}

/** Records a final result from the agent. */
export function finish(job: Rules, state: JobState, result: ExecutionResult): OutboxItem[] {
  state.result = result;
  if (isTerminal(state.status)) return [];
  if (result.status === "SUCCEEDED") return job.move(state, "succeed", { attempt: result.attempt });
  if (result.status === "CANCELLED") {
    state.error = state.error ?? result.error ?? "cancelled on the agent";
    return job.move(state, "cancel", { attempt: result.attempt, reason: state.error });
  }
  state.error = result.error ?? result.steps.find((x) => x.outcome === "failed")?.error ?? "a step failed";
  return job.move(state, "fail", { attempt: result.attempt, reason: state.error });
}

/** How long a started attempt may run: its spec's timeout (never above the configured one) plus slack. */
export function runLimitS(config: Pick<Config, "jobTimeoutS">, s: JobState): number {
  return Math.min(s.spec?.timeoutS ?? config.jobTimeoutS, config.jobTimeoutS) + 30;
}
