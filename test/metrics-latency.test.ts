// The /metrics latencies are measured from when the job entered the status it leaves: events that
// keep the status (`waiting` for an agent, `unreachable`/`reachable` while it runs) are no new start.
import { describe, expect, it } from "vitest";
import { newJobState } from "../src/jobs/decisions.ts";
import type { JobState } from "../src/jobs/job-state.ts";
import { move } from "../src/jobs/transitions.ts";

const T = Date.parse("2026-11-26T06:00:00Z");

/** The measurement the event into `to` carries (the outbox's event item). */
function measured(state: JobState, event: Parameters<typeof move>[1], at: number) {
  const item = move(state, event, null, at).find((e) => e.kind === "event");
  return item?.kind === "event" ? item.measure : undefined;
}

function queuedJob(): JobState {
  const s = newJobState(
    { jobId: "job_0000000000000latency", projectId: "p", intent: "x", userId: "u", chatId: null },
    T,
  );
  move(s, "plan_ready", null, T + 10);
  move(s, "approve", null, T + 20);
  return s;
}

describe("latency measurements", () => {
  it("dispatch: from entering QUEUED, however many `waiting` events came meanwhile", () => {
    const s = queuedJob();
    expect(measured(s, "waiting", T + 5_000)).toBeNull();
    expect(measured(s, "waiting", T + 65_000)).toBeNull();
    expect(measured(s, "start", T + 66_000)).toEqual({ histogram: "dispatch", ms: 65_980 });
  });

  it("duration: from entering RUNNING, through `unreachable` and `reachable`", () => {
    const s = queuedJob();
    move(s, "start", null, T + 1_000);
    move(s, "unreachable", null, T + 100_000);
    move(s, "reachable", null, T + 200_000);
    expect(measured(s, "succeed", T + 301_000)).toEqual({ histogram: "duration", ms: 300_000 });
  });

  it("a re-dispatch measures the new wait from the job's return to QUEUED", () => {
    const s = queuedJob();
    move(s, "start", null, T + 1_000);
    move(s, "requeue", null, T + 50_000);
    move(s, "waiting", null, T + 60_000);
    expect(measured(s, "start", T + 70_000)).toEqual({ histogram: "dispatch", ms: 20_000 });
  });

  it("a state stored before entry times were kept measures from its latest event, as it did", () => {
    const s = queuedJob();
    delete s.enteredAt;
    s.lastAtByStatus = { ...s.lastAtByStatus, QUEUED: T + 40_000 };
    expect(measured(s, "start", T + 41_000)).toEqual({ histogram: "dispatch", ms: 1_000 });
  });
});
