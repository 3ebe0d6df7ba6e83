// Policy: risk classification, approval rules and validation of what is about to run.
// The model (or any planner) can raise a step's risk, never lower it; unknown actions are refused.
import {
  checkActionParams,
  type ExecutionSpec,
  ExecutionSpecSchema,
  maxRisk,
  type PlanSpec,
  type PlanStep,
  type RiskLevel,
  riskAtLeast,
} from "../../protocol/index.ts";

export type Checked<T> = { ok: true; value: T } | { ok: false; error: string };

/** Re-classifies every step of a plan; returns the plan with corrected risks or the first problem. */
export function classifyPlan(plan: PlanSpec): Checked<PlanSpec> {
  const steps: PlanStep[] = [];
  for (const [i, step] of plan.proposedSteps.entries()) {
    if (!step.action) return { ok: false, error: `step ${i + 1} ("${step.description}") names no catalog action` };
    const check = checkActionParams(step.action, step.params ?? {});
    if (!check.ok) return { ok: false, error: `step ${i + 1}: ${check.error}` };
    steps.push({ ...step, params: check.params, risk: maxRisk(check.action.risk, step.risk) });
  }
  return {
    ok: true,
    value: { ...plan, proposedSteps: steps, estimatedRiskLevel: maxRisk(...steps.map((s) => s.risk)) },
  };
}

export function needsApproval(risk: RiskLevel, opts: { autoApproveReadOnly: boolean }): boolean {
  return !(risk === "READ_ONLY" && opts.autoApproveReadOnly);
}

/** ADMIN decisions are written to the audit log. */
export function requiresAudit(risk: RiskLevel): boolean {
  return riskAtLeast(risk, "ADMIN");
}

/**
 * The last check before anything is dispatched: the spec's shape, every step's action and params
 * against the catalog, and no step claiming less risk than its action carries.
 */
export function validateExecutionSpec(spec: unknown): { ok: true; spec: ExecutionSpec } | { ok: false; error: string } {
  const parsed = ExecutionSpecSchema.safeParse(spec);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, error: `invalid execution spec: ${issue ? `${issue.path.join(".")}: ${issue.message}` : ""}` };
  }
  for (const step of parsed.data.steps) {
    const check = checkActionParams(step.action, step.params);
    if (!check.ok) return { ok: false, error: `step ${step.id}: ${check.error}` };
    if (!riskAtLeast(step.risk, check.action.risk)) {
      return { ok: false, error: `step ${step.id}: ${step.action} is ${check.action.risk}, not ${step.risk}` };
    }
  }
  return { ok: true, spec: parsed.data };
}
