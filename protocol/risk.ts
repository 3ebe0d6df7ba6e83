// The risk rule, in one place for the Worker (planners, dispatcher, policy) and the agent:
// a step's risk is its catalog action's risk, raised — never lowered — by whatever a planner,
// a model or a spec claims. Everything that classifies or re-checks a step goes through here.
import { type ActionDefinition, checkActionParams } from "./actions.ts";
import { type JsonObject, maxRisk, type RiskLevel } from "./jobs.ts";
import { err, ok, type Result } from "./result.ts";

export interface ClassifiedStep {
  action: ActionDefinition;
  /** The params as the catalog validated them, defaults filled in. */
  params: JsonObject;
  risk: RiskLevel;
}

/** Resolves a step against the catalog and gives it its risk: max(catalog, claim). */
export function classifyStep(action: string, params: unknown, claimed?: RiskLevel): Result<ClassifiedStep> {
  const check = checkActionParams(action, params);
  if (!check.ok) return check;
  const { action: def, params: checked } = check.value;
  return ok({ action: def, params: checked, risk: maxRisk(def.risk, claimed ?? "READ_ONLY") });
}

/**
 * The re-check of a step that arrives already classified (the last check before dispatch, and the
 * agent's own): its stated risk must be the one classifyStep gives, i.e. not below the catalog's.
 */
export function checkStepRisk(step: { action: string; params: unknown; risk: RiskLevel }): Result<ClassifiedStep> {
  const classified = classifyStep(step.action, step.params, step.risk);
  if (!classified.ok) return classified;
  if (classified.value.risk !== step.risk) {
    return err(`${step.action} is ${classified.value.action.risk} but the step claims ${step.risk}`);
  }
  return classified;
}

/**
 * Whether a step at this risk may change something: such a step needs approval (unless policy
 * says otherwise), is confirmed with the server before it starts and is never run twice.
 */
export function writes(risk: RiskLevel): boolean {
  return risk !== "READ_ONLY";
}

/** A plan's or spec's risk: the highest of its steps' (READ_ONLY for none). */
export function planRisk(steps: readonly { risk: RiskLevel }[]): RiskLevel {
  return maxRisk(...steps.map((s) => s.risk));
}
