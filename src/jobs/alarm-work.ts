// What a JobDO's alarm does about its deadlines (deadlines.ts): planning that needs the model
// (planning.ts; never in the caller's request), a planning call cut off by a restart, approval timeout,
// lost lease, unreachable holder, queue timeout and run timeout. The JobDO drains and re-arms after.
import { log } from "../lib/log.ts";
import { dueDeadline, MAX_PLAN_ATTEMPTS } from "./deadlines.ts";
import type { JobContext } from "./job-context.ts";
import type { JobState } from "./job-state.ts";
import type { OutboxItem } from "./outbox-items.ts";
import { planJob } from "./planning.ts";
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
