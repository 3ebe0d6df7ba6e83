// The planner interface: one intent in, a validated PlanSpec (or a clear refusal) out.
import type { PlanSpec } from "../../protocol/index.ts";

export interface PlannerInput {
  jobId: string;
  intent: string;
  projectId: string;
}

export type PlanOutcome = { ok: true; plan: PlanSpec } | { ok: false; reason: string };

export interface Planner {
  readonly kind: "anthropic" | "rules";
  plan(input: PlannerInput): Promise<PlanOutcome>;
}
