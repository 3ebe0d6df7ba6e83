// What a job's chat summary says about its log and its duration: a cut log says so and where the
// rest is; durations never read "1 min 60 s".
import { describe, expect, it } from "vitest";
import { type JobView, LOG_TAIL_LINES } from "../protocol/index.ts";
import { duration, renderJob } from "../src/bot/format.ts";
import { jobView } from "./helpers/job-view.ts";

function finished(logTail: string): JobView {
  return jobView({
    id: "job_0formattest0000000000",
    status: "SUCCEEDED",
    intent: "run the tests",
    risk: "READ_ONLY",
    logTail,
    agentId: "agent_1",
    messageId: 1,
    decidedBy: "auto",
    createdAt: "2026-11-25T10:00:00.000Z",
    updatedAt: "2026-11-25T10:00:05.000Z",
    startedAt: "2026-11-25T10:00:01.000Z",
    finishedAt: "2026-11-25T10:00:05.000Z",
  });
}

const lines = (n: number) => Array.from({ length: n }, (_, i) => `line ${i + 1}`).join("\n");
const MARKER = "… earlier lines not shown: /logs job_0formattest0000000000";

describe("a job's summary", () => {
  it("shows a short log whole, with no marker", () => {
    const text = renderJob(finished(lines(3)));
    expect(text).toContain("<pre>line 1\nline 2\nline 3</pre>");
    expect(text).not.toContain("earlier lines");
  });

  it("says earlier lines were left out when the view's tail is full (the log is longer)", () => {
    const text = renderJob(finished(lines(LOG_TAIL_LINES)));
    expect(text).toContain(MARKER);
    expect(text.indexOf(MARKER)).toBeLessThan(text.indexOf("<pre>"));
  });

  it("says so when lines had to be cut to fit the message", () => {
    const long = Array.from({ length: 20 }, (_, i) => `${i}: ${"x".repeat(290)}`).join("\n");
    const text = renderJob(finished(long));
    expect(text).toContain(MARKER);
    expect(text).toContain("19: ");
    expect(text).not.toContain("\n0: ");
  });
});

describe("durations", () => {
  it.each([
    [999, "999 ms"],
    [1500, "1.5 s"],
    [59_940, "59.9 s"],
    [60_000, "1 min 0 s"],
    [119_600, "2 min 0 s"],
    [125_400, "2 min 5 s"],
  ])("%d ms reads %s", (ms, text) => {
    expect(duration(ms)).toBe(text);
  });
});
