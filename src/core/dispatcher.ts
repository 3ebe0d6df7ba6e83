// Dispatcher: turns an approved PlanSpec into the ExecutionSpec an agent runs, through the action
// catalog — the action the planner named, else the first catalog phrase matching the step's
// description. A step that maps to nothing is refused, never guessed into a shell.
import {
  checkActionParams,
  type ExecutionSpec,
  type ExecutionStep,
  matchPhrase,
  maxRisk,
  type PlanSpec,
} from "../../protocol/index.ts";

export interface BuildOptions {
  attempt: number;
  projectId: string;
  jobTimeoutS: number;
}

export function buildExecutionSpec(
  plan: PlanSpec,
  opts: BuildOptions,
): { ok: true; spec: ExecutionSpec } | { ok: false; error: string } {
  const steps: ExecutionStep[] = [];
  for (const [i, step] of plan.proposedSteps.entries()) {
    const n = i + 1;
    let action = step.action;
    let params: Record<string, unknown> | undefined = step.params;
    if (!action) {
      const match = matchPhrase(step.description);
      if (!match) return { ok: false, error: `step ${n} ("${step.description}") matches no catalog action` };
      action = match.action.name;
      params = { ...match.params, ...params };
    }
    const check = checkActionParams(action, params ?? {});
    if (!check.ok) return { ok: false, error: `step ${n}: ${check.error}` };
    steps.push({
      id: `s${n}`,
      action: check.action.name,
      params: check.params,
      risk: maxRisk(check.action.risk, step.risk),
      timeoutS: Math.min(check.action.defaultTimeoutS, opts.jobTimeoutS),
    });
  }
  return {
    ok: true,
    spec: {
      jobId: plan.jobId,
      attempt: opts.attempt,
      provider: "openclaw",
      projectId: opts.projectId,
      steps,
      timeoutS: opts.jobTimeoutS,
    },
  };
}
