// The job state machine as one pure table. JobDO is its only caller and the only writer of a
// job's status; everything else asks the JobDO.
import type { JobStatus } from "../../protocol/index.ts";
import { err, ok, type Result } from "../../protocol/result.ts";

// Three events keep the status and only record what the requester must know: `waiting` (QUEUED,
// no connected agent can take the job, and why), `unreachable` and `reachable` (RUNNING, the
// agent holding a job whose WRITE step had started went silent / came back). An unreachable job
// is never failed for it while its result could still arrive: see jobs/unreachable.ts.
export type JobEvent =
  | "plan_ready"
  | "plan_failed"
  | "approve"
  | "start"
  | "requeue"
  | "succeed"
  | "fail"
  | "cancel"
  | "waiting"
  | "unreachable"
  | "reachable";

const TABLE: Record<JobStatus, Partial<Record<JobEvent, JobStatus>>> = {
  CREATED: { plan_ready: "PLANNED", plan_failed: "FAILED", fail: "FAILED", cancel: "CANCELLED" },
  PLANNED: { approve: "QUEUED", fail: "FAILED", cancel: "CANCELLED" },
  QUEUED: { start: "RUNNING", fail: "FAILED", cancel: "CANCELLED", waiting: "QUEUED" },
  RUNNING: {
    succeed: "SUCCEEDED",
    fail: "FAILED",
    requeue: "QUEUED",
    cancel: "CANCELLED",
    unreachable: "RUNNING",
    reachable: "RUNNING",
  },
  SUCCEEDED: {},
  FAILED: {},
  CANCELLED: {},
};

/** The status `event` moves a job in `from` to, or why the table refuses it. */
export function transition(from: JobStatus, event: JobEvent): Result<JobStatus> {
  const to = TABLE[from][event];
  if (to) return ok(to);
  const allowed = Object.keys(TABLE[from]);
  return err(
    allowed.length === 0
      ? `the job is ${from}, which is final`
      : `cannot ${event.replace("_", " ")} a job that is ${from} (allowed: ${allowed.join(", ")})`,
  );
}

/** Every (state, event) pair the table allows, for tests and documentation. */
export function allowedTransitions(): { from: JobStatus; event: JobEvent; to: JobStatus }[] {
  return Object.entries(TABLE).flatMap(([from, events]) =>
    Object.entries(events).map(([event, to]) => ({ from: from as JobStatus, event: event as JobEvent, to })),
  );
}

export const ALL_EVENTS: readonly JobEvent[] = [
  "plan_ready",
  "plan_failed",
  "approve",
  "start",
  "requeue",
  "succeed",
  "fail",
  "cancel",
  "waiting",
  "unreachable",
  "reachable",
];
