// What a JobDO's alarm does about its deadlines (deadlines.ts): planning (the planner runs
// here, never in the caller's request), a planning call cut off by a restart, approval timeout,
// lost lease, unreachable holder, queue timeout and run timeout. The JobDO drains and re-arms after.
import { needsApproval } from "../core/policy.ts";
import { errorMessage, log } from "../lib/log.ts";
import { createPlanner } from "../planners/index.ts";
import { addTallies } from "../planners/model-call.ts";
import { dueDeadline, MAX_PLAN_ATTEMPTS } from "./deadlines.ts";
import type { JobContext } from "./job-context.ts";
import type { JobState } from "./job-state.ts";
import type { OutboxItem } from "./outbox.ts";
import { dispatchFromPlan, failEffects, runLimitS } from "./transitions.ts";
import { markUnreachable, unreachableOutcome } from "./unreachable.ts";

/** Acts on the job's first due deadline, if any (purge is the JobDO's own: it deletes storage). */
export async function checkDeadlines(job: JobContext): Promise<void> {
  const s = job.load();
  if (!s) return;
  const due = dueDeadline(s, job.config, job.now());
  switch (due?.kind) {
    case "plan":
      await planJob(job, s);
      return;
    case "plan_stalled":
      if ((s.planAttempts ?? 1) >= MAX_PLAN_ATTEMPTS) {
        s.error = `planning did not finish after ${MAX_PLAN_ATTEMPTS} attempts`;
        job.commit(s, job.move(s, "plan_failed", { reason: s.error }));
      } else await planJob(job, s); // cut off (the object restarted mid-call): plan again
      return;
    case "approval":
      s.error = "no decision within the approval timeout";
      job.commit(s, job.move(s, "cancel", { reason: "approval_timeout" }));
      return;
    case "lease":
      job.commit(s, infraFailure(job, s, `agent lost: ${s.lease?.agentId} stopped renewing its lease`));
      return;
    case "unreachable":
    case "without_job":
      job.commit(s, unreachableOutcome(job, s, due.kind));
      return;
    case "queue":
      job.commit(s, failEffects(job, s, `no agent picked the job up within ${job.config.jobTimeoutS}s`));
      return;
    case "run":
      job.commit(s, failEffects(job, s, `timed out after ${runLimitS(job.config, s)}s`));
      return;
  }
}

/**
 * Agent lost: re-dispatch only while no WRITE/ADMIN step has started. One that had started is
 * flagged unreachable and waits for its result (unreachable.ts), never failed for this.
 */
function infraFailure(job: JobContext, state: JobState, reason: string): OutboxItem[] {
  const oldAttempt = state.attempt;
  if (state.writeStarted) return state.unreachableSince ? [] : markUnreachable(job, state);
  if (state.attempt >= job.config.maxDispatchAttempts) {
    return failEffects(job, state, `${reason}; gave up after ${state.attempt} attempts`);
  }
  log("warn", "re-dispatching after infrastructure failure", { jobId: state.id, attempt: oldAttempt, reason });
  const cancelOld: OutboxItem = { kind: "cancel_agent", attempt: oldAttempt, reason };
  return [cancelOld, ...dispatchFromPlan(job, state, "requeue")];
}

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
  let outcome: Awaited<ReturnType<typeof planner.plan>>;
  try {
    outcome = await planner.plan({
      jobId: state.id,
      intent: state.intent,
      projectId: state.projectId,
      followUp: state.followUp ?? undefined,
    });
  } catch (err) {
    outcome = { ok: false, reason: `planner error: ${errorMessage(err)}` };
  }
  const s = job.load();
  if (s?.status !== "CREATED") return; // cancelled while planning
  if (outcome.tokens) s.tokens = addTallies(s.tokens, outcome.tokens);
  if (!outcome.ok) {
    s.error = outcome.reason;
    job.commit(s, job.move(s, "plan_failed", { reason: outcome.reason, planner: planner.kind }));
    return;
  }
  s.plan = outcome.plan;
  s.question = outcome.question ?? null;
  s.planNotice = outcome.notice ?? null;
  s.risk = outcome.plan.estimatedRiskLevel;
  s.needsApproval = needsApproval(outcome.plan.estimatedRiskLevel, {
    autoApproveReadOnly: job.config.autoApproveReadOnly,
  });
  const effects = job.move(s, "plan_ready", {
    risk: s.risk,
    planner: outcome.plan.planner,
    steps: outcome.plan.proposedSteps.length,
    ...(outcome.notice ? { notice: outcome.notice } : {}),
  });
  if (s.needsApproval) {
    s.approvalDeadline = job.now() + job.config.approvalTimeoutS * 1000;
    job.commit(s, effects);
  } else {
    s.decidedBy = "auto";
    job.commit(s, [...effects, ...dispatchFromPlan(job, s, "approve")]);
  }
}
