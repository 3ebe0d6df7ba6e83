// The agent's approval relay: its timeout is authoritative (the tool is denied) and is reported up
// as permission_expired for that very request, so the server's record and the Telegram message
// stop offering a decision at once; a request that was answered is never reported expired.
import { describe, expect, it } from "vitest";
import type { PermissionExpiredFrame, PermissionRequestFrame } from "../../protocol/index.ts";
import { ApprovalRelay } from "../src/coder/approvals.ts";

const fence = { jobId: "job_0123456789abcdef", attempt: 2, leaseToken: "l".repeat(32) };
const ask = { tool: "Bash", kind: "command" as const, target: "npm test" };

function relay(timeoutS: number) {
  const sent: (PermissionRequestFrame | PermissionExpiredFrame)[] = [];
  const r = new ApprovalRelay((f) => {
    sent.push(f);
    return true;
  }, timeoutS);
  return { r, sent };
}

describe("ApprovalRelay expiry", () => {
  it("denies on its own timeout and reports that request expired", async () => {
    const { r, sent } = relay(0.05);
    const decided = await r.approverFor(fence, "s1")(ask, new AbortController().signal);
    expect(decided.decision).toBe("deny");
    const asked = sent.find((f) => f.type === "permission_request");
    expect(asked).toBeDefined();
    expect(sent.filter((f) => f.type === "permission_expired")).toEqual([
      { type: "permission_expired", jobId: fence.jobId, attempt: 2, requestId: asked?.requestId },
    ]);
  });

  it("does not report an answered request expired", async () => {
    const { r, sent } = relay(0.2);
    const pending = r.approverFor(fence, "s1")(ask, new AbortController().signal);
    const asked = sent[0];
    if (asked?.type !== "permission_request") throw new Error("not asked");
    r.onDecision({
      type: "permission_decision",
      jobId: fence.jobId,
      attempt: 2,
      requestId: asked.requestId,
      decision: "allow",
    });
    expect((await pending).decision).toBe("allow");
    // Past the timeout: the finished request's timer was cleared, so nothing more goes up.
    await new Promise((res) => setTimeout(res, 400));
    expect(sent.map((f) => f.type)).toEqual(["permission_request"]);
  });
});
