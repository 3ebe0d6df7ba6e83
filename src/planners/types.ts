// The planner interface: one intent in, a validated PlanSpec (or a clear refusal) out.
import type { PlanSpec } from "../../protocol/index.ts";
import type { Result } from "../../protocol/result.ts";
import type { FollowUpContext } from "./follow-up.ts";
import type { TokenTally } from "./model-call.ts";

export interface PlannerInput {
  jobId: string;
  intent: string;
  projectId: string;
  /** The earlier job a Telegram reply follows up (data for a model planner; the rules ignore it). */
  followUp?: FollowUpContext;
}

/**
 * `question`: what the person asked to be told ("which failed"), answered when the job ends.
 * `notice`: what the person should know about how it was planned ("Claude is unavailable…").
 * `tokens` (here and in a refusal): what the model calls made for this plan cost.
 */
export interface Planned {
  plan: PlanSpec;
  question?: string;
  notice?: string;
  tokens?: TokenTally;
}

/** `unavailable`: the model could not be used (down, overloaded, slow), as opposed to a refusal of the task itself. */
export interface PlanRefusal {
  reason: string;
  unavailable?: boolean;
  tokens?: TokenTally;
}

export type PlanOutcome = Result<Planned, PlanRefusal>;

export interface Planner {
  readonly kind: "anthropic" | "rules";
  plan(input: PlannerInput): Promise<PlanOutcome>;
}
