// deadlines(state): the one derivation of a job's deadlines, from which both the alarm time and
// the alarm's checks come. Pure: checked here on states built by hand.
import { describe, expect, it } from "vitest";
import {
  alarmAt,
  type DeadlineConfig,
  deadlines,
  dueDeadline,
  MAX_PLAN_ATTEMPTS,
  PLAN_STALL_MS,
  WITHOUT_JOB_CONFIRM_MS,
} from "../src/jobs/deadlines.ts";
import { newJobState } from "../src/jobs/decisions.ts";
import type { JobState } from "../src/jobs/job-state.ts";

const config: DeadlineConfig = {
  jobTimeoutS: 3600,
  unreachableTimeoutS: 600,
  jobStateRetentionDays: 7,
  logRetentionDays: 30,
};
const T = 1_800_000_000_000;
const empty = { nextAt: null, size: 0 };

function state(patch: Partial<JobState>): JobState {
  return {
    ...newJobState({ jobId: "job_1", projectId: "p", intent: "x", userId: "u", chatId: null }, T),
    ...patch,
  };
}
const lease = (expiresAt: number) => ({ attempt: 1, agentId: "a1", leaseToken: "t", expiresAt, lastSeenAt: T });

describe("deadlines(state)", () => {
  it("derives each status's deadlines, in the order their checks take precedence", () => {
    expect(deadlines(state({}), config)).toEqual([{ kind: "plan", at: 0 }]);
    expect(deadlines(state({ planningStarted: true, planningStartedAt: T }), config)).toEqual([
      { kind: "plan_stalled", at: T + PLAN_STALL_MS },
    ]);
    expect(deadlines(state({ status: "PLANNED", approvalDeadline: T + 300_000 }), config)).toEqual([
      { kind: "approval", at: T + 300_000 },
    ]);
    expect(deadlines(state({ status: "QUEUED", queuedAt: T }), config)).toEqual([{ kind: "queue", at: T + 3_600_000 }]);
    // The run limit is the spec's timeout, never above the configured one, plus 30 s.
    const running = state({ status: "RUNNING", startedAt: T, lease: lease(T + 120_000) });
    expect(deadlines(running, config)).toEqual([
      { kind: "lease", at: T + 120_000 },
      { kind: "run", at: T + (3600 + 30) * 1000 },
    ]);
    expect(deadlines(state({ status: "SUCCEEDED", finishedAt: T }), config)).toEqual([
      { kind: "purge", at: T + 7 * 86_400_000 },
    ]);
  });

  it("gives an unreachable holder's job only the bounds on waiting for its result", () => {
    const s = state({
      status: "RUNNING",
      startedAt: T - 10_000_000,
      lease: lease(T - 1),
      unreachableSince: T - 1,
      withoutJobAt: T + 5,
    });
    expect(deadlines(s, config)).toEqual([
      { kind: "unreachable", at: T - 1 + 600_000 },
      { kind: "without_job", at: T + 5 + WITHOUT_JOB_CONFIRM_MS },
    ]);
    // Its run limit passed long ago, yet nothing is due until one of those bounds.
    expect(dueDeadline(s, config, T + 1000)).toBeNull();
    expect(dueDeadline(s, config, T + 5 + WITHOUT_JOB_CONFIRM_MS)?.kind).toBe("without_job");
  });

  it("acts on the first due deadline: a lost lease before a passed run limit", () => {
    const s = state({ status: "RUNNING", startedAt: T, lease: lease(T + 60_000) });
    const late = T + 4_000_000;
    expect(dueDeadline(s, config, late)?.kind).toBe("lease");
    expect(dueDeadline(s, config, T + 59_999)).toBeNull();
  });

  it("counts a planning attempt with no recorded start as cut off", () => {
    const s = state({ planningStarted: true, planningStartedAt: null, planAttempts: MAX_PLAN_ATTEMPTS });
    expect(dueDeadline(s, config, T)?.kind).toBe("plan_stalled");
  });
});

describe("alarmAt", () => {
  const cases: [string, JobState][] = [
    ["a new job", state({})],
    ["planning", state({ planningStarted: true, planningStartedAt: T })],
    ["waiting for approval", state({ status: "PLANNED", approvalDeadline: T + 300_000 })],
    ["queued", state({ status: "QUEUED", queuedAt: T })],
    ["running", state({ status: "RUNNING", startedAt: T, lease: lease(T + 120_000) })],
    [
      "unreachable",
      state({ status: "RUNNING", startedAt: T, lease: lease(T), unreachableSince: T, withoutJobAt: T + 1000 }),
    ],
    ["final", state({ status: "FAILED", finishedAt: T })],
  ];
  for (const [name, s] of cases) {
    it(`fires for ${name} exactly when a check has something to do`, () => {
      const at = alarmAt(s, config, empty, T);
      expect(at).not.toBeNull();
      const when = at as number;
      expect(dueDeadline(s, config, when)).not.toBeNull();
      if (when > T + 5) expect(dueDeadline(s, config, when - 1)).toBeNull();
    });
  }

  it("takes the outbox's next retry when it is earlier, and never a time in the past", () => {
    const s = state({ status: "QUEUED", queuedAt: T });
    expect(alarmAt(s, config, { nextAt: T + 2000, size: 1 }, T)).toBe(T + 2000);
    expect(alarmAt(s, config, { nextAt: 0, size: 1 }, T)).toBe(T + 5);
    expect(alarmAt(state({}), config, empty, T)).toBe(T + 5);
  });

  it("keeps a final job's storage while its outbox owes anything, and has nothing to wake for then", () => {
    const s = state({ status: "CANCELLED", finishedAt: T });
    expect(alarmAt(s, config, { nextAt: null, size: 1 }, T)).toBeNull();
    expect(alarmAt(s, config, { nextAt: T + 60_000, size: 1 }, T)).toBe(T + 60_000);
    expect(alarmAt(s, config, empty, T)).toBe(T + 7 * 86_400_000);
  });
});
