// Where the answer shows: first in the chat summary of an ended job (escaped, marked when it was
// written from the results without a model), with the tokens; in the CLI's job view.
import { describe, expect, it } from "vitest";
import type { JobView } from "../protocol/index.ts";
import { renderJob as renderCli } from "../scripts/cli/render.ts";
import { renderJob } from "../src/bot/format.ts";
import { jobView } from "./helpers/job-view.ts";

function ended(over: Partial<JobView>): JobView {
  return jobView({
    id: "job_0answerformat00000000",
    status: "FAILED",
    intent: "run the tests and tell me which failed",
    risk: "WRITE",
    logTail: "not ok 2 - subtracts numbers",
    error: "a step failed",
    agentId: "agent_1",
    messageId: 1,
    needsApproval: true,
    decidedBy: "42",
    createdAt: "2026-11-25T10:00:00.000Z",
    updatedAt: "2026-11-25T10:00:05.000Z",
    startedAt: "2026-11-25T10:00:01.000Z",
    finishedAt: "2026-11-25T10:00:05.000Z",
    ...over,
  });
}

describe("the answer in a summary", () => {
  it("comes first in the chat, escaped, marked when written by rules", () => {
    const rules = renderJob(
      ended({ answer: { text: "1 test failed (exit 1): <b>x</b>", by: "rules", at: "2026-11-25T10:00:06Z" } }),
    );
    expect(rules.split("\n")[0]).toBe("💬 1 test failed (exit 1): &lt;b&gt;x&lt;/b&gt; <i>(from the results)</i>");
    const claude = renderJob(
      ended({
        answer: { text: "One test failed.", by: "claude", at: "2026-11-25T10:00:06Z" },
        tokens: { calls: 2, input: 900, cachedInput: 1800, cacheWrite: 0, output: 140 },
      }),
    );
    expect(claude.split("\n")[0]).toBe("💬 One test failed.");
    expect(claude).toContain("🔢 2700 in (1800 cached) / 140 out tokens");
    expect(renderJob(ended({})).startsWith("<b>❌ Failed</b>")).toBe(true);
    const offline = renderJob(
      ended({ status: "PLANNED", planNotice: "Claude is unavailable (overloaded (529)), planned offline." }),
    );
    expect(offline).toContain("\nℹ️ Claude is unavailable (overloaded (529)), planned offline.");
    // A running job has no answer yet, whatever the view says.
    const running = renderJob(
      ended({ status: "RUNNING", answer: { text: "stale", by: "rules", at: "2026-11-25T10:00:06Z" } }),
    );
    expect(running).not.toContain("stale");
  });

  it("shows in the CLI, with the plan notice and tokens", () => {
    const text = renderCli(
      ended({
        answer: { text: "One test failed.", by: "claude", at: "2026-11-25T10:00:06Z" },
        planNotice: "Claude is unavailable (overloaded (529)), planned offline.",
        tokens: { calls: 1, input: 300, cachedInput: 0, cacheWrite: 0, output: 20 },
      }),
    );
    expect(text).toContain("\n  answer: One test failed.\n");
    expect(text).toContain("\n  note: Claude is unavailable (overloaded (529)), planned offline.\n");
    expect(text).toContain("\n  tokens: 1 model call: 300 input (0 cached), 20 output");
  });
});
