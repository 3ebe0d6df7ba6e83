// Policy: approval rules and the last check of what is about to run. The risk rule itself
// (catalog risk, raised never lowered) lives in protocol/risk.ts, shared with the agent.
import {
  checkStepRisk,
  type ExecutionSpec,
  ExecutionSpecSchema,
  err,
  ok,
  type Result,
  type RiskLevel,
  riskAtLeast,
  writes,
} from "../../protocol/index.ts";

export function needsApproval(risk: RiskLevel, opts: { autoApproveReadOnly: boolean }): boolean {
  return writes(risk) || !opts.autoApproveReadOnly;
}

/** ADMIN decisions are written to the audit log. */
export function requiresAudit(risk: RiskLevel): boolean {
  return riskAtLeast(risk, "ADMIN");
}

/**
 * The last check before anything is dispatched: the spec's shape, every step's action and params
 * against the catalog, and no step claiming less risk than its action carries.
 */
export function validateExecutionSpec(spec: unknown): Result<ExecutionSpec> {
  const parsed = ExecutionSpecSchema.safeParse(spec);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return err(`invalid execution spec: ${issue ? `${issue.path.join(".")}: ${issue.message}` : ""}`);
  }
  for (const step of parsed.data.steps) {
    const checked = checkStepRisk(step);
    if (!checked.ok) return err(`step ${step.id}: ${checked.error}`);
  }
  return ok(parsed.data);
}
