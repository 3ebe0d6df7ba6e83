// A job whose WRITE/ADMIN step had started when its agent went silent: the step may still be
// running, or may have completed, so the job is neither re-run nor failed for it. It stays
// RUNNING, flagged (an `unreachable` event and a notice), and takes its result whenever it comes
// for the current attempt; only when the agent stays unreachable past AGENT_UNREACHABLE_SECONDS,
// or reconnects without the job and replays no result, does it fail — as "outcome unknown".
import type { JobDO } from "./job-do.ts";
import type { JobState } from "./job-state.ts";
import type { OutboxItem } from "./outbox.ts";

/** How long a reconnected agent that does not list its unreachable job has to replay its result. */
export const WITHOUT_JOB_CONFIRM_MS = 10_000;

/** The holder of a job whose WRITE/ADMIN step had started went silent: RUNNING, flagged, not failed. */
export function markUnreachable(job: JobDO, state: JobState): OutboxItem[] {
  const lease = state.lease;
  const since = lease?.lastSeenAt ?? Date.now();
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
export function reachableAgain(job: JobDO, state: JobState): OutboxItem[] {
  const since = state.unreachableSince ?? Date.now();
  const effects = job.move(state, "reachable", { agentId: state.lease?.agentId, since: new Date(since).toISOString() });
  state.unreachableSince = null;
  state.withoutJobAt = null;
  state.notice = null;
  return effects;
}

/** From the alarm, while unreachable: fail only once the result can no longer be expected. */
export function checkUnreachable(job: JobDO, s: JobState, now: number): void {
  const since = s.unreachableSince;
  if (!since || !s.lease) return;
  const agent = s.lease.agentId;
  let reason: string | null = null;
  if (now >= since + job.config.unreachableTimeoutS * 1000) {
    reason =
      `outcome unknown: the step may have completed (agent ${agent} unreachable since ` +
      `${new Date(since).toISOString()}, no result within ${job.config.unreachableTimeoutS}s)`;
  } else if (s.withoutJobAt && now >= s.withoutJobAt + WITHOUT_JOB_CONFIRM_MS) {
    reason =
      `outcome unknown: the step may have completed (agent ${agent} reconnected without ` +
      "this job, as after a restart, and reported no result)";
  }
  if (reason) job.commit(s, job.failEffects(s, reason));
}
