// Dispatcher: turns an approved PlanSpec into the ExecutionSpec an agent runs, through the action
// catalog — the action the planner named, else the first catalog phrase matching the step's
// description. A step that maps to nothing is refused, never guessed into a shell.
import {
  classifyStep,
  type ExecutionSpec,
  type ExecutionStep,
  err,
  matchPhrase,
  OPENCLAW,
  ok,
  type PlanSpec,
  type Result,
} from "../../protocol/index.ts";

export interface BuildOptions {
  attempt: number;
  projectId: string;
  jobTimeoutS: number;
}

export function buildExecutionSpec(plan: PlanSpec, opts: BuildOptions): Result<ExecutionSpec> {
  const steps: ExecutionStep[] = [];
  for (const [i, step] of plan.proposedSteps.entries()) {
    const n = i + 1;
    let action = step.action;
    let params: Record<string, unknown> | undefined = step.params;
    if (!action) {
      const match = matchPhrase(step.description);
      if (!match) return err(`step ${n} ("${step.description}") matches no catalog action`);
      action = match.action.name;
      params = { ...match.params, ...params };
    }
    const classified = classifyStep(action, params ?? {}, step.risk);
    if (!classified.ok) return err(`step ${n}: ${classified.error}`);
    const { action: def, params: checked, risk } = classified.value;
    steps.push({
      id: `s${n}`,
      action: def.name,
      params: checked,
      risk,
      timeoutS: Math.min(def.defaultTimeoutS, opts.jobTimeoutS),
    });
  }
  return ok({
    jobId: plan.jobId,
    attempt: opts.attempt,
    provider: OPENCLAW,
    projectId: opts.projectId,
    steps,
    timeoutS: opts.jobTimeoutS,
  });
}
