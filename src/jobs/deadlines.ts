// Every deadline of a job, derived from its state in one place: the alarm is set to the
// earliest (with the outbox's retries), and the alarm's checks act on the first one due.
import { isTerminal } from "../../protocol/index.ts";
import type { Config } from "../config.ts";
import type { JobState } from "./job-state.ts";
import { runLimitS } from "./transitions.ts";

/** A planning attempt not finished after this long was cut off (the planner's own timeout is 30 s). */
export const PLAN_STALL_MS = 90_000;
export const MAX_PLAN_ATTEMPTS = 2;
/** A QUEUED job older than this is offered again by the Sentinel (backoffs lifted). */
export const REOFFER_AFTER_MS = 60_000;
/** How long a reconnected agent that does not list its unreachable job has to replay its result. */
export const WITHOUT_JOB_CONFIRM_MS = 10_000;

export type DeadlineKind =
  /** CREATED, never planned: plan now (at 0). */
  | "plan"
  /** CREATED, a planning call that never finished (the object restarted mid-call). */
  | "plan_stalled"
  | "approval"
  /** RUNNING: the holder stopped renewing its lease. */
  | "lease"
  /** RUNNING: the attempt ran past its time limit. */
  | "run"
  /** RUNNING, holder unreachable: the bound on waiting for its result. */
  | "unreachable"
  /** RUNNING, holder unreachable, back without the job: the pause for a replayed result. */
  | "without_job"
  /** QUEUED: no agent took the job in time. */
  | "queue"
  /** Final: the job's storage may be deleted (once its outbox is empty). */
  | "purge";

export interface Deadline {
  kind: DeadlineKind;
  at: number;
}

export type DeadlineConfig = Pick<
  Config,
  "jobTimeoutS" | "unreachableTimeoutS" | "jobStateRetentionDays" | "logRetentionDays"
>;

/**
 * The job's deadlines in the order their checks take precedence (the alarm acts on the first
 * one due, then re-arms): pure, so the alarm time and the checks cannot disagree.
 */
export function deadlines(s: JobState, config: DeadlineConfig): Deadline[] {
  const out: Deadline[] = [];
  switch (s.status) {
    case "CREATED":
      // A planning with no recorded start (older state) counts as cut off.
      if (!s.planningStarted) out.push({ kind: "plan", at: 0 });
      else out.push({ kind: "plan_stalled", at: (s.planningStartedAt ?? 0) + PLAN_STALL_MS });
      break;
    case "PLANNED":
      if (s.approvalDeadline !== null) out.push({ kind: "approval", at: s.approvalDeadline });
      break;
    case "QUEUED":
      if (s.queuedAt !== null) out.push({ kind: "queue", at: s.queuedAt + config.jobTimeoutS * 1000 });
      break;
    case "RUNNING":
      if (s.unreachableSince) {
        // Unreachable: the lease has already expired, and a run limit would fail a step that may
        // have completed: only the bounds on waiting for the result count.
        if (!s.lease) break;
        out.push({ kind: "unreachable", at: s.unreachableSince + config.unreachableTimeoutS * 1000 });
        if (s.withoutJobAt) out.push({ kind: "without_job", at: s.withoutJobAt + WITHOUT_JOB_CONFIRM_MS });
      } else {
        if (s.lease) out.push({ kind: "lease", at: s.lease.expiresAt });
        if (s.startedAt !== null) out.push({ kind: "run", at: s.startedAt + runLimitS(config, s) * 1000 });
      }
      break;
    default:
      if (isTerminal(s.status) && s.finishedAt !== null) {
        const days = Math.min(config.jobStateRetentionDays, config.logRetentionDays);
        out.push({ kind: "purge", at: s.finishedAt + days * 86_400_000 });
      }
  }
  return out;
}

/** The first deadline due at `now` (the one the alarm acts on), or null. */
export function dueDeadline(s: JobState, config: DeadlineConfig, now: number): Deadline | null {
  return deadlines(s, config).find((d) => now >= d.at) ?? null;
}

/**
 * When the job's alarm should fire: the earliest deadline or outbox retry, never in the past
 * (past ones fire as soon as possible); null when nothing is pending. A final job with items
 * still owed (parked ones included) keeps its storage until they are done, so purge waits for
 * an empty outbox.
 */
export function alarmAt(
  s: JobState,
  config: DeadlineConfig,
  outbox: { nextAt: number | null; size: number },
  now: number,
): number | null {
  const times = deadlines(s, config)
    .filter((d) => d.kind !== "purge" || outbox.size === 0)
    .map((d) => d.at);
  if (outbox.nextAt !== null) times.push(outbox.nextAt);
  if (times.length === 0) return null;
  return Math.max(Math.min(...times), now + 5);
}
