// Chooses the planner: Claude when an Anthropic key is configured, else the offline rules.
import { AnthropicPlanner } from "./anthropic.ts";
import { RulePlanner } from "./rules.ts";
import type { Planner } from "./types.ts";

export type { Planner, PlannerInput, PlanOutcome } from "./types.ts";

export interface PlannerOptions {
  anthropicApiKey: string;
  anthropicBaseUrl?: string;
  anthropicModel: string;
  timeoutMs?: number;
}

export function createPlanner(opts: PlannerOptions): Planner {
  if (!opts.anthropicApiKey) return new RulePlanner();
  return new AnthropicPlanner({
    apiKey: opts.anthropicApiKey,
    baseURL: opts.anthropicBaseUrl,
    model: opts.anthropicModel,
    timeoutMs: opts.timeoutMs,
  });
}
