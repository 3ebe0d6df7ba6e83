// The shared protocol: valid and invalid input for each schema, and the action catalog.
import { describe, expect, it } from "vitest";
import {
  ACTION_CATALOG,
  AgentToServerSchema,
  CreateTaskRequestSchema,
  checkActionParams,
  ExecutionResultSchema,
  ExecutionSpecSchema,
  JobIdSchema,
  JobListQuerySchema,
  JobStatusSchema,
  matchPhrase,
  maxRisk,
  PairRequestSchema,
  PlanSpecSchema,
  parseFrame,
  RiskLevelSchema,
  ServerToAgentSchema,
  splitArgv,
} from "../protocol/index.ts";

const jobId = "job_0123456789abcdef";
const lease = { jobId, attempt: 1, leaseToken: "l".repeat(32) };
const spec = {
  jobId,
  attempt: 1,
  provider: "openclaw",
  projectId: "default",
  steps: [{ id: "s1", action: "git_status", params: {}, risk: "READ_ONLY", timeoutS: 60 }],
  timeoutS: 3600,
};

describe("risk and status", () => {
  it("orders risk READ_ONLY < WRITE < ADMIN", () => {
    expect(maxRisk("READ_ONLY", "ADMIN", "WRITE")).toBe("ADMIN");
    expect(maxRisk("READ_ONLY", "WRITE")).toBe("WRITE");
    expect(maxRisk()).toBe("READ_ONLY");
    expect(RiskLevelSchema.safeParse("SUPERUSER").success).toBe(false);
  });
  it("knows the seven job states and nothing else", () => {
    expect(JobStatusSchema.options).toHaveLength(7);
    expect(JobStatusSchema.safeParse("DONE").success).toBe(false);
  });
  it("accepts only server-shaped job ids", () => {
    expect(JobIdSchema.safeParse(jobId).success).toBe(true);
    for (const bad of ["job_1", "../job_0123456789", "JOB_0123456789abcdef", "job_0123456789abcdef'--"]) {
      expect(JobIdSchema.safeParse(bad).success).toBe(false);
    }
  });
});

describe("plan and execution specs", () => {
  const plan = {
    jobId,
    userIntentSummary: "check git status",
    proposedSteps: [{ description: "git status", risk: "READ_ONLY", action: "git_status", params: {} }],
    estimatedRiskLevel: "READ_ONLY",
    expectedArtifacts: [],
    planner: "rules",
    createdAt: new Date().toISOString(),
  };
  it("accepts a valid plan and refuses an empty or unknown-field one", () => {
    expect(PlanSpecSchema.safeParse(plan).success).toBe(true);
    expect(PlanSpecSchema.safeParse({ ...plan, proposedSteps: [] }).success).toBe(false);
    expect(PlanSpecSchema.safeParse({ ...plan, planner: "gpt" }).success).toBe(false);
    expect(PlanSpecSchema.safeParse({ ...plan, extra: 1 }).success).toBe(false);
  });
  it("accepts a valid execution spec and refuses duplicate step ids or bad timeouts", () => {
    expect(ExecutionSpecSchema.safeParse(spec).success).toBe(true);
    const dup = { ...spec, steps: [spec.steps[0], spec.steps[0]] };
    expect(ExecutionSpecSchema.safeParse(dup).success).toBe(false);
    expect(ExecutionSpecSchema.safeParse({ ...spec, timeoutS: 0 }).success).toBe(false);
    expect(ExecutionSpecSchema.safeParse({ ...spec, provider: "ssh" }).success).toBe(false);
  });
  it("validates execution results", () => {
    const result = {
      jobId,
      attempt: 1,
      status: "SUCCEEDED",
      steps: [{ stepId: "s1", action: "git_status", outcome: "succeeded", exitCode: 0 }],
      artifacts: [],
    };
    expect(ExecutionResultSchema.safeParse(result).success).toBe(true);
    expect(ExecutionResultSchema.safeParse({ ...result, status: "RUNNING" }).success).toBe(false);
  });
});

describe("action catalog", () => {
  it("has the design's entries with risk and capability", () => {
    const byName = Object.fromEntries(ACTION_CATALOG.map((a) => [a.name, a]));
    for (const n of ["git_status", "git_diff", "git_log", "list_files", "read_file", "search_code"]) {
      expect(byName[n]?.risk).toBe("READ_ONLY");
    }
    for (const n of ["run_tests", "build_project", "lint", "install_deps", "write_file", "git_commit"]) {
      expect(byName[n]?.risk).toBe("WRITE");
    }
    expect(byName.git_push?.risk).toBe("ADMIN");
    expect(byName.run_command?.risk).toBe("ADMIN");
    expect(byName.run_command?.capability).toBe("shell");
  });
  it("validates params per action and fills defaults", () => {
    const ok = checkActionParams("git_log", {});
    expect(ok.ok && ok.value.params).toEqual({ limit: 20 });
    expect(checkActionParams("read_file", { path: "../../etc/passwd" }).ok).toBe(false);
    expect(checkActionParams("read_file", { path: "/etc/passwd" }).ok).toBe(false);
    expect(checkActionParams("write_file", { path: "a.txt", content: "x".repeat(1024 * 1024 + 1) }).ok).toBe(false);
    expect(checkActionParams("run_command", { argv: [] }).ok).toBe(false);
    expect(checkActionParams("git_push", { remote: "origin; rm -rf /" }).ok).toBe(false);
    expect(checkActionParams("format_disk", {})).toMatchObject({ ok: false, error: 'unknown action "format_disk"' });
    expect(checkActionParams("git_status", { extra: true }).ok).toBe(false);
  });
  it("recognises phrases", () => {
    expect(matchPhrase("check git status in my project")?.action.name).toBe("git_status");
    expect(matchPhrase("run all tests")?.action.name).toBe("run_tests");
    expect(matchPhrase("build project")?.action.name).toBe("build_project");
    expect(matchPhrase("run invalid command xyz123")).toMatchObject({
      action: { name: "run_command" },
      params: { argv: ["xyz123"] },
    });
    expect(matchPhrase("create a new file test.txt with hello world")).toMatchObject({
      action: { name: "write_file" },
      params: { path: "test.txt", content: "hello world" },
    });
    expect(matchPhrase("make me a sandwich")).toBeUndefined();
  });
  it("splits argv without a shell", () => {
    expect(splitArgv(`echo "a b" 'c' $(rm -rf ~)`)).toEqual(["echo", "a b", "c", "$(rm", "-rf", "~)"]);
  });
});

describe("agent wire messages", () => {
  it("parses valid frames of each direction", () => {
    const hello = {
      type: "hello",
      protocolVersion: 1,
      agentName: "laptop",
      agentVersion: "0.1.0",
      capabilities: ["git", "fs"],
      workspaces: ["default"],
      maxConcurrency: 2,
    };
    expect(parseFrame(AgentToServerSchema, JSON.stringify(hello)).ok).toBe(true);
    const log = { type: "log", ...lease, stepId: "s1", seq: 0, stream: "stdout", data: "hi" };
    expect(parseFrame(AgentToServerSchema, JSON.stringify(log)).ok).toBe(true);
    const offer = { type: "job_offer", ...lease, lease: { agentId: "agent_1", expiresAt: 1_700_000_000_000 }, spec };
    expect(parseFrame(ServerToAgentSchema, JSON.stringify(offer)).ok).toBe(true);
    // The offer carries its lease: without it, or with a holder or expiry that is not one, it is refused.
    expect(parseFrame(ServerToAgentSchema, JSON.stringify({ ...offer, lease: undefined })).ok).toBe(false);
    for (const bad of [
      { agentId: "", expiresAt: 1 },
      { agentId: "a", expiresAt: -1 },
      { agentId: "a", expiresAt: 1.5 },
    ]) {
      expect(parseFrame(ServerToAgentSchema, JSON.stringify({ ...offer, lease: bad })).ok).toBe(false);
    }
    const extra = { ...offer, lease: { ...offer.lease, leaseToken: "t".repeat(32) } };
    expect(parseFrame(ServerToAgentSchema, JSON.stringify(extra)).ok).toBe(false);
  });
  it("refuses bad frames with a readable error", () => {
    expect(parseFrame(AgentToServerSchema, "{not json")).toEqual({ ok: false, error: "frame is not valid JSON" });
    const unknown = parseFrame(AgentToServerSchema, JSON.stringify({ type: "rm_rf" }));
    expect(unknown.ok).toBe(false);
    const staleShape = parseFrame(AgentToServerSchema, JSON.stringify({ type: "job_accept", jobId, attempt: 0 }));
    expect(staleShape.ok).toBe(false);
    const big = { type: "log", ...lease, seq: 0, stream: "stdout", data: "x".repeat(64 * 1024 + 1) };
    expect(parseFrame(AgentToServerSchema, JSON.stringify(big)).ok).toBe(false);
    expect(parseFrame(AgentToServerSchema, new ArrayBuffer(4))).toMatchObject({ ok: false });
  });
});

describe("API schemas", () => {
  it("bounds the intent", () => {
    expect(CreateTaskRequestSchema.safeParse({ intent: "check git status" }).data).toEqual({
      intent: "check git status",
      projectId: "default",
    });
    expect(CreateTaskRequestSchema.safeParse({ intent: "   " }).success).toBe(false);
    expect(CreateTaskRequestSchema.safeParse({ intent: "x".repeat(2001) }).success).toBe(false);
    expect(CreateTaskRequestSchema.safeParse({ intent: 5 }).success).toBe(false);
  });
  it("validates list queries and pairing codes", () => {
    expect(JobListQuerySchema.safeParse({ limit: "5" }).data).toEqual({ limit: 5 });
    expect(JobListQuerySchema.safeParse({ limit: "500" }).success).toBe(false);
    expect(JobListQuerySchema.safeParse({ status: "DONE" }).success).toBe(false);
    expect(PairRequestSchema.safeParse({ code: "ABCD2345", name: "laptop" }).success).toBe(true);
    expect(PairRequestSchema.safeParse({ code: "abc", name: "laptop" }).success).toBe(false);
  });
});
