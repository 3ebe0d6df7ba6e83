// What a JobDO's alarm does: planning (the planner runs here, never in the caller's request)
// and the deadlines — a planning call cut off by a restart, approval timeout, lost lease,
// queue timeout and run timeout.
import { isTerminal } from "../../protocol/index.ts";
import { needsApproval } from "../core/policy.ts";
import { errorMessage, log } from "../lib/log.ts";
import { createPlanner } from "../planners/index.ts";
import { addTallies } from "../planners/model-call.ts";
import { type JobDO, MAX_PLAN_ATTEMPTS, PLAN_STALL_MS } from "./job-do.ts";
import type { JobState } from "./job-state.ts";
import { checkUnreachable } from "./unreachable.ts";

export async function checkDeadlines(job: JobDO): Promise<void> {
  const state = job.load();
  if (state?.status === "CREATED") {
    const stalled = state.planningStarted && Date.now() >= (state.planningStartedAt ?? 0) + PLAN_STALL_MS;
    if (stalled && (state.planAttempts ?? 1) >= MAX_PLAN_ATTEMPTS) {
      state.error = `planning did not finish after ${MAX_PLAN_ATTEMPTS} attempts`;
      job.commit(state, job.move(state, "plan_failed", { reason: state.error }));
    } else if (!state.planningStarted || stalled) {
      // First planning, or one cut off (the object restarted mid-call): plan (again).
      await planJob(job, state);
    }
  }
  const now = Date.now();
  const s = job.load();
  if (s && !isTerminal(s.status)) {
    if (s.status === "PLANNED" && s.approvalDeadline !== null && now >= s.approvalDeadline) {
      s.error = "no decision within the approval timeout";
      job.commit(s, job.move(s, "cancel", { reason: "approval_timeout" }));
    } else if (s.status === "RUNNING" && s.lease && now >= s.lease.expiresAt) {
      if (s.unreachableSince) checkUnreachable(job, s, now);
      else job.commit(s, job.infraFailure(s, `agent lost: ${s.lease.agentId} stopped renewing its lease`));
    } else if (s.status === "QUEUED" && s.queuedAt !== null && now >= s.queuedAt + job.config.jobTimeoutS * 1000) {
      job.commit(s, job.failEffects(s, `no agent picked the job up within ${job.config.jobTimeoutS}s`));
    } else if (s.status === "RUNNING" && s.startedAt !== null && now >= s.startedAt + job.runLimitS(s) * 1000) {
      job.commit(s, job.failEffects(s, `timed out after ${job.runLimitS(s)}s`));
    }
  }
  await job.afterChange();
}

export async function planJob(job: JobDO, state: JobState): Promise<void> {
  state.planningStarted = true;
  state.planningStartedAt = Date.now();
  state.planAttempts = (state.planAttempts ?? 0) + 1;
  job.ctx.storage.kv.put("job", state);
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
    s.approvalDeadline = Date.now() + job.config.approvalTimeoutS * 1000;
    job.commit(s, effects);
  } else {
    s.decidedBy = "auto";
    job.commit(s, [...effects, ...job.dispatchFromPlan(s, "approve")]);
  }
}

/** When a final job's Durable Object storage may go (its ledger row and R2 archive remain). */
export function purgeAt(job: JobDO, s: JobState): number | null {
  if (!isTerminal(s.status) || s.finishedAt === null) return null;
  const days = Math.min(job.config.jobStateRetentionDays, job.config.logRetentionDays);
  return s.finishedAt + days * 86_400_000;
}

/**
 * Deletes the job's storage once it is final, past retention and has nothing left to do (every
 * ledger write and the log archive done, nothing parked); true when it did. The alarm was set
 * for this by scheduleJobAlarm, so no sweep ever lists old jobs.
 */
export async function purgeIfExpired(job: JobDO): Promise<boolean> {
  const s = job.load();
  if (!s) return false;
  const at = purgeAt(job, s);
  if (at === null || Date.now() < at || job.outbox.size() > 0) return false;
  log("info", "job storage deleted after retention", { jobId: s.id, status: s.status });
  await job.ctx.storage.deleteAlarm();
  await job.ctx.storage.deleteAll();
  return true;
}
