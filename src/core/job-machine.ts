// The job state machine as one pure table. JobDO is its only caller and the only writer of a
// job's status; everything else asks the JobDO.
import type { JobStatus } from "../../protocol/index.ts";

export type JobEvent = "plan_ready" | "plan_failed" | "approve" | "start" | "requeue" | "succeed" | "fail" | "cancel";

const TABLE: Record<JobStatus, Partial<Record<JobEvent, JobStatus>>> = {
  CREATED: { plan_ready: "PLANNED", plan_failed: "FAILED", fail: "FAILED", cancel: "CANCELLED" },
  PLANNED: { approve: "QUEUED", fail: "FAILED", cancel: "CANCELLED" },
  QUEUED: { start: "RUNNING", fail: "FAILED", cancel: "CANCELLED" },
  RUNNING: { succeed: "SUCCEEDED", fail: "FAILED", requeue: "QUEUED", cancel: "CANCELLED" },
  SUCCEEDED: {},
  FAILED: {},
  CANCELLED: {},
};

export type TransitionResult = { ok: true; to: JobStatus } | { ok: false; error: string };

export function transition(from: JobStatus, event: JobEvent): TransitionResult {
  const to = TABLE[from][event];
  if (to) return { ok: true, to };
  const allowed = Object.keys(TABLE[from]);
  return {
    ok: false,
    error:
      allowed.length === 0
        ? `the job is ${from}, which is final`
        : `cannot ${event.replace("_", " ")} a job that is ${from} (allowed: ${allowed.join(", ")})`,
  };
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
];
