// The planner interface: one intent in, a validated PlanSpec (or a clear refusal) out.
import type { PlanSpec } from "../../protocol/index.ts";

export interface PlannerInput {
  jobId: string;
  intent: string;
  projectId: string;
}

/** `question`: what the person asked to be told ("which failed"), answered when the job ends. */
export type PlanOutcome = { ok: true; plan: PlanSpec; question?: string } | { ok: false; reason: string };

export interface Planner {
  readonly kind: "anthropic" | "rules";
  plan(input: PlannerInput): Promise<PlanOutcome>;
}
