// The offline rule planner: clause splitting, every catalog action, refusals.
import { describe, expect, it } from "vitest";
import { ACTION_CATALOG, getAction, PlanSpecSchema } from "../protocol/index.ts";
import { RulePlanner, splitClauses } from "../src/planners/rules.ts";

const planner = new RulePlanner();
const plan = (intent: string) => planner.plan({ jobId: "job_0123456789abcdef", intent, projectId: "default" });

const PHRASES: Record<string, string> = {
  code_task: "ask the coder to fix the failing test",
  git_status: "check git status",
  git_diff: "show me the diff",
  git_log: "show the last 5 commits",
  list_files: "list all files",
  read_file: "read the file README.md",
  search_code: "search the code for TODO",
  run_tests: "run all tests",
  build_project: "build the project",
  lint: "lint the code",
  install_deps: "install dependencies",
  write_file: "create a new file test.txt with hello world",
  git_commit: "commit with message fix typo",
  git_push: "push to origin",
  run_command: "run command npm --version",
};

describe("rule planner", () => {
  it("recognises every catalog action from a phrase", async () => {
    expect(Object.keys(PHRASES).sort()).toEqual(ACTION_CATALOG.map((a) => a.name).sort());
    for (const [action, phrase] of Object.entries(PHRASES)) {
      const res = await plan(phrase);
      expect(res.ok ? res.value.plan.proposedSteps.map((s) => s.action) : res.error.reason, phrase).toEqual([action]);
    }
  });

  it("splits the seed's scenarios into ordered steps with their risk", async () => {
    const three = await plan("check git status, run tests, and build project");
    expect(three.ok && three.value.plan.proposedSteps.map((s) => s.action)).toEqual([
      "git_status",
      "run_tests",
      "build_project",
    ]);
    expect(three.ok && three.value.plan.estimatedRiskLevel).toBe("WRITE");
    const status = await plan("check git status in my project");
    expect(status.ok && status.value.plan.estimatedRiskLevel).toBe("READ_ONLY");
    const file = await plan("create a new file test.txt with hello world");
    expect(file.ok && file.value.plan.proposedSteps[0]?.params).toEqual({
      path: "test.txt",
      content: "hello world",
      overwrite: false,
    });
    const cmd = await plan("run invalid command xyz123");
    expect(cmd.ok && cmd.value.plan.proposedSteps[0]).toMatchObject({
      action: "run_command",
      params: { argv: ["xyz123"] },
      risk: "ADMIN",
    });
    const tests = await plan("run all tests");
    expect(tests.ok && tests.value.plan.expectedArtifacts).toEqual(["test output log"]);
  });

  it("keeps free text whole: file content and commands are not split on 'and'", async () => {
    expect(splitClauses("create a file a.txt with salt and pepper")).toEqual([
      "create a file a.txt with salt and pepper",
    ]);
    expect(splitClauses("check git status and then run command echo a, b")).toEqual([
      "check git status",
      "run command echo a, b",
    ]);
    const res = await plan("check git status then create a file notes.md with eggs, milk and bread");
    expect(res.ok && res.value.plan.proposedSteps.map((s) => s.params)).toEqual([
      {},
      { path: "notes.md", content: "eggs, milk and bread", overwrite: false },
    ]);
  });

  it("splits a closing commit/push off free text into steps of their own", async () => {
    expect(splitClauses("create a new file test.txt with hello world, and commit")).toEqual([
      "create a new file test.txt with hello world",
      "commit",
    ]);
    expect(splitClauses("commit with message fix typo and push to origin")).toEqual([
      "commit with message fix typo",
      "push to origin",
    ]);
    const res = await plan("create a file a.txt with eggs, milk and bread then commit with message add list, and push");
    expect(res.ok && res.value.plan.proposedSteps.map((s) => [s.action, s.risk])).toEqual([
      ["write_file", "WRITE"],
      ["git_commit", "WRITE"],
      ["git_push", "ADMIN"],
    ]);
    expect(res.ok && res.value.plan.proposedSteps[1]?.params).toEqual({ message: "add list", addAll: true });
  });

  it("builds a plan that passes the schema, with catalog risk per step and the maximum overall", async () => {
    const res = await plan("Check git status in my project; show the last 3 commits, then run command xyz123.");
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    expect(PlanSpecSchema.parse(res.value.plan)).toEqual(res.value.plan);
    expect(res.value.plan).toMatchObject({ jobId: "job_0123456789abcdef", planner: "rules" });
    expect(Number.isNaN(Date.parse(res.value.plan.createdAt))).toBe(false);
    expect(res.value.plan.proposedSteps.map((s) => [s.action, s.risk])).toEqual([
      ["git_status", "READ_ONLY"],
      ["git_log", "READ_ONLY"],
      ["run_command", "ADMIN"],
    ]);
    expect(res.value.plan.proposedSteps[2]?.params).toEqual({ argv: ["xyz123"] });
    expect(res.value.plan.estimatedRiskLevel).toBe("ADMIN");
    for (const step of res.value.plan.proposedSteps) {
      expect(step.risk).toBe(getAction(step.action ?? "")?.risk);
      expect(step.description.length).toBeGreaterThan(0);
    }
    const read = await plan("show me the diff and list files");
    expect(read.ok && read.value.plan.estimatedRiskLevel).toBe("READ_ONLY");
    const cmd = await plan("run command xyz123");
    expect(cmd.ok && cmd.value.plan.proposedSteps[0]?.params).toEqual({ argv: ["xyz123"] });
  });

  it("refuses an empty task with examples", async () => {
    const res = await plan("   ");
    expect(res).toEqual({ ok: false, error: { reason: expect.stringContaining("Try phrases like") } });
  });

  it("refuses what it does not understand, saying what it did understand", async () => {
    const res = await plan("check git status and make me a sandwich");
    expect(res.ok).toBe(false);
    expect(!res.ok && res.error.reason).toContain('"check git status" → git_status');
    expect(!res.ok && res.error.reason).toContain('"make me a sandwich"');
    expect(!res.ok && res.error.reason).toContain("Try phrases like");
  });

  it("refuses paths that leave the workspace", async () => {
    const res = await plan("read the file ../../etc/passwd");
    expect(res.ok).toBe(false);
    expect(!res.ok && res.error.reason).toMatch(/leave the workspace/);
  });
});
