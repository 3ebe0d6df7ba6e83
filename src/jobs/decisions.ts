// What people decide about a job — approve, deny, cancel, or submit a ready spec through the
// gateway — as changes of its state: each checks who may decide and when, commits the change
// and returns the changed state, or why nothing changed.
import { type ExecutionSpec, isTerminal, maxRisk, type PlanSpec } from "../../protocol/index.ts";
import { err, ok, type Result } from "../../protocol/result.ts";
import { requiresAudit } from "../core/policy.ts";
import type { Actor, CreateJobInput, JobRefusal } from "./job-api.ts";
import type { JobContext } from "./job-context.ts";
import type { JobState } from "./job-state.ts";
import type { OutboxItem } from "./outbox-items.ts";
import { cancelEffects, dispatchFromPlan } from "./transitions.ts";

export type Decision = Result<JobState, JobRefusal>;

type Job = Pick<JobContext, "commit" | "move" | "config" | "now">;

const notFound = (): Decision => err({ code: "not_found", message: "no such job" });
const forbidden = (message: string): Decision => err({ code: "forbidden", message });
const conflict = (message: string): Decision => err({ code: "conflict", message });

function mayDecide(state: JobState, actor: Actor): boolean {
  return actor.isAdmin || (state.userId !== null && state.userId === actor.id);
}

export function newJobState(input: CreateJobInput, now: number): JobState {
  return {
    id: input.jobId,
    projectId: input.projectId,
    intent: input.intent,
    userId: input.userId,
    chatId: input.chatId,
    messageId: input.messageId ?? null,
    followUp: input.followUp ?? null,
    status: "CREATED",
    risk: null,
    attempt: 0,
    dispatchedAttempt: 0,
    leaseToken: null,
    lease: null,
    plan: null,
    spec: null,
    steps: [],
    artifacts: [],
    writeStarted: false,
    needsApproval: false,
    approvalDeadline: null,
    decidedBy: null,
    error: null,
    result: null,
    createdAt: now,
    updatedAt: now,
    queuedAt: null,
    startedAt: null,
    finishedAt: null,
    eventSeq: 1,
    planningStarted: false,
  };
}

/** The plan of a gateway spec: its steps as given, approved by whoever submitted it. */
export function gatewayPlan(spec: ExecutionSpec, now: number): PlanSpec {
  return {
    jobId: spec.jobId,
    userIntentSummary: `execution spec with ${spec.steps.length} step(s)`,
    proposedSteps: spec.steps.map((s) => ({ description: s.action, risk: s.risk, action: s.action, params: s.params })),
    estimatedRiskLevel: maxRisk(...spec.steps.map((s) => s.risk)),
    expectedArtifacts: [],
    planner: "rules",
    createdAt: new Date(now).toISOString(),
  };
}

/**
 * A just-created gateway job takes its plan (the spec, approved by whoever submitted it) and is
 * dispatched at once: the effects for the commit that creates it, one storage write, not two.
 */
export function startFromGateway(job: Job, state: JobState, plan: PlanSpec, actor: Actor, steps: number): OutboxItem[] {
  state.planningStarted = true;
  state.plan = plan;
  state.risk = plan.estimatedRiskLevel;
  state.decidedBy = actor.id;
  const effects = job.move(state, "plan_ready", { planner: "gateway" });
  if (requiresAudit(state.risk)) {
    effects.push({ kind: "audit", actor: actor.id, action: "gateway_execute_admin", detail: { steps }, at: job.now() });
  }
  effects.push(...dispatchFromPlan(job, state, "approve"));
  return effects;
}

export function approve(job: Job, state: JobState | undefined, actor: Actor): Decision {
  if (!state) return notFound();
  if (!mayDecide(state, actor)) return forbidden("only the person who asked for this job (or an admin) may approve it");
  if (state.status !== "PLANNED") return conflict(`job is ${state.status}, not waiting for approval`);
  state.decidedBy = actor.id;
  const effects: OutboxItem[] = [];
  if (state.risk && requiresAudit(state.risk)) {
    effects.push({
      kind: "audit",
      actor: actor.id,
      action: "approve_admin_job",
      detail: { risk: state.risk },
      at: job.now(),
    });
  }
  effects.push(...dispatchFromPlan(job, state, "approve"));
  job.commit(state, effects);
  return ok(state);
}

export function deny(job: Job, state: JobState | undefined, actor: Actor, reason: string): Decision {
  if (!state) return notFound();
  if (!mayDecide(state, actor)) return forbidden("only the person who asked for this job (or an admin) may deny it");
  if (state.status !== "PLANNED") return conflict(`job is ${state.status}, not waiting for approval`);
  state.decidedBy = actor.id;
  state.error = `denied by ${actor.id}${reason && reason !== "denied" ? `: ${reason}` : ""}`;
  job.commit(state, job.move(state, "cancel", { reason: "denied", by: actor.id }));
  return ok(state);
}

export function cancel(job: Job, state: JobState | undefined, actor: Actor, reason: string): Decision {
  if (!state) return notFound();
  if (!mayDecide(state, actor)) return forbidden("only the person who asked for this job (or an admin) may cancel it");
  if (isTerminal(state.status)) return conflict(`job already ${state.status}`);
  const why = `cancelled by ${actor.id}${reason !== "cancelled" ? `: ${reason}` : ""}`;
  job.commit(state, cancelEffects(job, state, why));
  return ok(state);
}
