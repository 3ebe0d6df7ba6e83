// A job whose WRITE/ADMIN step had started when its agent went silent: the step may still be
// running, or may have completed, so the job is neither re-run nor failed for it. It stays
// RUNNING, flagged (an `unreachable` event and a notice), and takes its result whenever it comes
// for the current attempt; only when the agent stays unreachable past AGENT_UNREACHABLE_SECONDS,
// or reconnects without the job and replays no result, does it fail — as "outcome unknown".
import type { JobContext } from "./job-context.ts";
import type { JobState } from "./job-state.ts";
import type { OutboxItem } from "./outbox-items.ts";
import { failEffects } from "./transitions.ts";

type Job = Pick<JobContext, "move" | "config" | "now">;

/** The holder of a job whose WRITE/ADMIN step had started went silent: RUNNING, flagged, not failed. */
export function markUnreachable(job: Job, state: JobState): OutboxItem[] {
  const lease = state.lease;
  const since = lease?.lastSeenAt ?? job.now();
  const until = since + job.config.unreachableTimeoutS * 1000;
  const effects = job.move(state, "unreachable", {
    agentId: lease?.agentId,
    since: new Date(since).toISOString(),
    waitUntil: new Date(until).toISOString(),
  });
  state.unreachableSince = since;
  state.notice =
    `agent ${lease?.agentId ?? "?"} unreachable since ${new Date(since).toISOString()}; a ${state.risk ?? "WRITE"} ` +
    `step had started, so it is not re-run: waiting for its result until ${new Date(until).toISOString()}`;
  return effects;
}

/** The holder of an unreachable job was heard from again: say so (the job never stopped RUNNING). */
export function reachableAgain(job: Job, state: JobState): OutboxItem[] {
  const since = state.unreachableSince ?? job.now();
  const effects = job.move(state, "reachable", { agentId: state.lease?.agentId, since: new Date(since).toISOString() });
  state.unreachableSince = null;
  state.withoutJobAt = null;
  state.notice = null;
  return effects;
}

/**
 * From the alarm, when an unreachable job's deadline is due: fails it as "outcome unknown" (the
 * result can no longer be expected); the caller commits the effects.
 */
export function unreachableOutcome(job: Job, s: JobState, why: "unreachable" | "without_job"): OutboxItem[] {
  const since = s.unreachableSince ?? job.now();
  const agent = s.lease?.agentId ?? "?";
  const reason =
    why === "unreachable"
      ? `outcome unknown: the step may have completed (agent ${agent} unreachable since ` +
        `${new Date(since).toISOString()}, no result within ${job.config.unreachableTimeoutS}s)`
      : `outcome unknown: the step may have completed (agent ${agent} reconnected without ` +
        "this job, as after a restart, and reported no result)";
  return failEffects(job, s, reason);
}
