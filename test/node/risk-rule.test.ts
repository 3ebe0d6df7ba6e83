// One risk rule on both sides: for every catalog action and every risk a planner, a model or a
// spec could claim, the model planner, the dispatcher, the Worker's last check and the agent's
// own re-check all agree with protocol/risk.ts — a side that kept its own copy of the rule and
// drifted (lowered a risk, or accepted an understated one) fails here.
import { describe, expect, it } from "vitest";
import { recheckStep } from "../../agent/src/executor.ts";
import {
  ACTION_CATALOG,
  type ActionName,
  classifyStep,
  type ExecutionStep,
  type JsonObject,
  type PlanSpec,
  RiskLevelSchema,
  writes,
} from "../../protocol/index.ts";
import { buildExecutionSpec } from "../../src/core/dispatcher.ts";
import { needsApproval, validateExecutionSpec } from "../../src/core/policy.ts";
import { validateModelPlan } from "../../src/planners/anthropic.ts";

const jobId = "job_0123456789abcdef";
// The smallest valid params per action; the test fails loudly if the catalog grows without one.
const PARAMS: Record<ActionName, JsonObject> = {
  git_status: {},
  git_diff: {},
  git_log: {},
  list_files: {},
  read_file: { path: "README.md" },
  search_code: { pattern: "todo" },
  run_tests: {},
  build_project: {},
  lint: {},
  install_deps: {},
  write_file: { path: "notes.txt", content: "x" },
  git_commit: { message: "m" },
  git_push: {},
  run_command: { argv: ["true"] },
  code_task: { instruction: "add a --verbose flag" },
};
const LEVELS = RiskLevelSchema.options;

const plan = (action: string, risk: (typeof LEVELS)[number]): PlanSpec => ({
  jobId,
  userIntentSummary: "t",
  proposedSteps: [{ description: action, action, params: PARAMS[action as ActionName], risk }],
  estimatedRiskLevel: risk,
  expectedArtifacts: [],
  planner: "anthropic",
  createdAt: new Date().toISOString(),
});

describe("the risk rule (protocol/risk.ts) is the one every side applies", () => {
  it("never lowers the catalog's risk and raises to a higher claim", () => {
    const rank = (r: string) => LEVELS.indexOf(r as (typeof LEVELS)[number]);
    for (const action of ACTION_CATALOG) {
      for (const claimed of LEVELS) {
        const c = classifyStep(action.name, PARAMS[action.name], claimed);
        if (!c.ok) throw new Error(`${action.name}: ${c.error}`);
        expect(c.value.risk).toBe(LEVELS[Math.max(rank(action.risk), rank(claimed))]);
      }
      const unclaimed = classifyStep(action.name, PARAMS[action.name]);
      expect(unclaimed.ok && unclaimed.value.risk).toBe(action.risk);
    }
  });

  it("what needs approval even with READ_ONLY auto-approval is exactly what writes", () => {
    for (const level of LEVELS) {
      expect(needsApproval(level, { autoApproveReadOnly: true }), level).toBe(writes(level));
      expect(needsApproval(level, { autoApproveReadOnly: false }), level).toBe(true);
    }
    expect(LEVELS.filter(writes)).toEqual(["WRITE", "ADMIN"]);
  });

  it("planner, dispatcher, Worker check and agent agree for every action × claimed risk", () => {
    for (const action of ACTION_CATALOG) {
      for (const claimed of LEVELS) {
        const rule = classifyStep(action.name, PARAMS[action.name], claimed);
        if (!rule.ok) throw new Error(rule.error);
        const want = rule.value.risk;
        const modelPlan = validateModelPlan(
          { steps: [{ description: action.name, action: action.name, params: PARAMS[action.name], risk: claimed }] },
          jobId,
        );
        expect(modelPlan.ok && modelPlan.value.proposedSteps[0]?.risk, `planner ${action.name}/${claimed}`).toBe(want);
        expect(modelPlan.ok && modelPlan.value.estimatedRiskLevel).toBe(want);
        const built = buildExecutionSpec(plan(action.name, claimed), { attempt: 1, projectId: "p", jobTimeoutS: 60 });
        expect(built.ok && built.value.steps[0]?.risk, `dispatcher ${action.name}/${claimed}`).toBe(want);
        if (!built.ok) continue;
        expect(validateExecutionSpec(built.value).ok, `policy accepts ${action.name}/${want}`).toBe(true);
        const step = built.value.steps[0] as ExecutionStep;
        expect(recheckStep(step, true).ok, `agent accepts ${action.name}/${want}`).toBe(true);
      }
    }
  });

  it("a spec that states less than the rule gives is refused by the Worker and by the agent alike", () => {
    let understated = 0;
    for (const action of ACTION_CATALOG) {
      for (const stated of LEVELS) {
        const rule = classifyStep(action.name, PARAMS[action.name], stated);
        const honest = rule.ok && rule.value.risk === stated;
        const step: ExecutionStep = { id: "s1", action: action.name, params: {}, risk: stated, timeoutS: 60 };
        const withParams = { ...step, params: rule.ok ? rule.value.params : {} };
        const spec = { jobId, attempt: 1, provider: "openclaw", projectId: "p", timeoutS: 60, steps: [withParams] };
        const worker = validateExecutionSpec(spec);
        const agent = recheckStep(withParams, true);
        expect(worker.ok, `Worker on ${action.name} stated ${stated}`).toBe(honest);
        expect(agent.ok, `agent on ${action.name} stated ${stated}`).toBe(honest);
        if (!honest) {
          understated++;
          expect(!agent.ok && agent.error).toBe(`${action.name} is ${action.risk} but the step claims ${stated}`);
          expect(!worker.ok && worker.error).toBe(
            `step s1: ${action.name} is ${action.risk} but the step claims ${stated}`,
          );
        }
      }
    }
    // Each action is understated once per level below its own: the loop really tried them all.
    const below = ACTION_CATALOG.reduce((n, a) => n + LEVELS.indexOf(a.risk), 0);
    expect(below).toBeGreaterThan(0);
    expect(understated).toBe(below);
  });
});
