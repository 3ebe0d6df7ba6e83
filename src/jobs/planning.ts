// Planning a CREATED job. A task the rules read whole is planned inside the create call (no
// model, no I/O: the job is QUEUED by the time the caller is answered); any other goes through
// the planner in the alarm, outside the caller's request (planJob).
import { err } from "../../protocol/result.ts";
import { needsApproval } from "../core/policy.ts";
import { errorMessage } from "../lib/log.ts";
import { createPlanner } from "../planners/index.ts";
import { addTallies } from "../planners/model-call.ts";
import { RulePlanner } from "../planners/rules.ts";
import type { PlanOutcome } from "../planners/types.ts";
import type { JobContext } from "./job-context.ts";
import type { JobState } from "./job-state.ts";
import type { OutboxItem } from "./outbox-items.ts";
import { dispatchFromPlan } from "./transitions.ts";

type Rules = Pick<JobContext, "move" | "config" | "now">;

const plannerInput = (s: JobState) => ({
  jobId: s.id,
  intent: s.intent,
  projectId: s.projectId,
  followUp: s.followUp ?? undefined,
});

/**
 * Plans a new job with the rules when they read the task whole (then no planner would call the
 * model either: see ChoosingPlanner); returns the effects to commit with it, or null to leave
 * the planning to the alarm.
 */
export function planInline(job: Rules, state: JobState): OutboxItem[] | null {
  const read = new RulePlanner().read(plannerInput(state));
  if (!read.sure) return null;
  state.planningStarted = true;
  state.planningStartedAt = job.now();
  state.planAttempts = 1;
  return applyPlan(job, state, read.outcome, "rules");
}

/** Plans in the alarm (the model path): marks the attempt, calls the planner, commits the outcome. */
export async function planJob(job: JobContext, state: JobState): Promise<void> {
  job.saveLiveness({
    planningStarted: true,
    planningStartedAt: job.now(),
    planAttempts: (state.planAttempts ?? 0) + 1,
  });
  const planner = createPlanner({
    anthropicApiKey: job.config.anthropicApiKey,
    anthropicBaseUrl: job.config.anthropicBaseUrl || undefined,
    anthropicModel: job.config.anthropicModel,
  });
  let outcome: PlanOutcome;
  try {
    outcome = await planner.plan(plannerInput(state));
  } catch (e) {
    outcome = err({ reason: `planner error: ${errorMessage(e)}` });
  }
  const s = job.load();
  if (s?.status !== "CREATED") return; // cancelled while planning
  job.commit(s, applyPlan(job, s, outcome, planner.kind));
}

/** The planner's outcome applied to a CREATED job: PLANNED (and QUEUED when no approval is needed), or failed. */
function applyPlan(job: Rules, s: JobState, outcome: PlanOutcome, plannerKind: string): OutboxItem[] {
  const tokens = outcome.ok ? outcome.value.tokens : outcome.error.tokens;
  if (tokens) s.tokens = addTallies(s.tokens, tokens);
  if (!outcome.ok) {
    s.error = outcome.error.reason;
    return job.move(s, "plan_failed", { reason: outcome.error.reason, planner: plannerKind });
  }
  const planned = outcome.value;
  s.plan = planned.plan;
  s.question = planned.question ?? null;
  s.planNotice = planned.notice ?? null;
  s.risk = planned.plan.estimatedRiskLevel;
  s.needsApproval = needsApproval(planned.plan.estimatedRiskLevel, {
    autoApproveReadOnly: job.config.autoApproveReadOnly,
  });
  const effects = job.move(s, "plan_ready", {
    risk: s.risk,
    planner: planned.plan.planner,
    steps: planned.plan.proposedSteps.length,
    ...(planned.notice ? { notice: planned.notice } : {}),
  });
  if (s.needsApproval) {
    s.approvalDeadline = job.now() + job.config.approvalTimeoutS * 1000;
    return effects;
  }
  s.decidedBy = "auto";
  return [...effects, ...dispatchFromPlan(job, s, "approve")];
}
