// Policy and dispatcher: risk can only be raised, unknown actions and escaping paths are refused.
import { describe, expect, it } from "vitest";
import { classifyStep, type PlanSpec, planRisk } from "../protocol/index.ts";
import { buildExecutionSpec } from "../src/core/dispatcher.ts";
import { needsApproval, requiresAudit, validateExecutionSpec } from "../src/core/policy.ts";

const jobId = "job_0123456789abcdef";
function plan(steps: PlanSpec["proposedSteps"]): PlanSpec {
  return {
    jobId,
    userIntentSummary: "test",
    proposedSteps: steps,
    estimatedRiskLevel: "READ_ONLY",
    expectedArtifacts: [],
    planner: "anthropic",
    createdAt: new Date().toISOString(),
  };
}
const opts = { attempt: 1, projectId: "default", jobTimeoutS: 3600 };

describe("policy", () => {
  it("raises a model's READ_ONLY git_push to ADMIN, never lowers", () => {
    const res = classifyStep("git_push", {}, "READ_ONLY");
    expect(res.ok && res.value.risk).toBe("ADMIN");
    expect(res.ok && planRisk([{ risk: "READ_ONLY" }, res.value])).toBe("ADMIN");
    const raised = classifyStep("git_status", {}, "WRITE");
    expect(raised.ok && planRisk([raised.value])).toBe("WRITE");
  });
  it("refuses unknown actions and escaping paths", () => {
    expect(classifyStep("rm_rf", {}, "READ_ONLY")).toMatchObject({ ok: false });
    const escaping = classifyStep("read_file", { path: "../../etc/passwd" }, "READ_ONLY");
    expect(escaping.ok).toBe(false);
    expect(!escaping.ok && escaping.error).toMatch(/leave the workspace/);
  });
  it("auto-approves READ_ONLY only when configured, audits ADMIN", () => {
    expect(needsApproval("READ_ONLY", { autoApproveReadOnly: true })).toBe(false);
    expect(needsApproval("READ_ONLY", { autoApproveReadOnly: false })).toBe(true);
    expect(needsApproval("WRITE", { autoApproveReadOnly: true })).toBe(true);
    expect(requiresAudit("ADMIN")).toBe(true);
    expect(requiresAudit("WRITE")).toBe(false);
  });
});

describe("dispatcher", () => {
  it("maps steps by action, else by phrase, with catalog timeouts and max risk", () => {
    const res = buildExecutionSpec(
      plan([
        { description: "check git status", risk: "READ_ONLY" },
        { description: "run the tests", risk: "READ_ONLY", action: "run_tests" },
      ]),
      opts,
    );
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    expect(res.value.steps.map((s) => [s.id, s.action, s.risk])).toEqual([
      ["s1", "git_status", "READ_ONLY"],
      ["s2", "run_tests", "WRITE"],
    ]);
    expect(res.value.steps[1]?.params).toEqual({ args: [] });
    expect(validateExecutionSpec(res.value).ok).toBe(true);
  });
  it("refuses unmapped steps", () => {
    const res = buildExecutionSpec(plan([{ description: "make me a sandwich", risk: "READ_ONLY" }]), opts);
    expect(res).toMatchObject({ ok: false });
    expect(!res.ok && res.error).toMatch(/matches no catalog action/);
  });
  it("refuses a spec that under-states risk or smuggles an unknown action", () => {
    const spec = {
      jobId,
      attempt: 1,
      provider: "openclaw",
      projectId: "default",
      timeoutS: 60,
      steps: [{ id: "s1", action: "git_push", params: {}, risk: "READ_ONLY", timeoutS: 60 }],
    };
    expect(validateExecutionSpec(spec)).toMatchObject({ ok: false });
    const shell = { ...spec, steps: [{ id: "s1", action: "sh", params: {}, risk: "ADMIN", timeoutS: 60 }] };
    expect(validateExecutionSpec(shell)).toMatchObject({ ok: false });
  });
});
