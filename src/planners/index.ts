// Chooses the planner. The rules read every task first: a task they read whole is planned by them
// with no model call, key or not. Otherwise Claude plans when a key is configured; when Claude is
// unavailable (down, overloaded, rate-limited, slow) the rules' reading is the fallback, and the
// person is told it was planned offline.
import { err, ok } from "../../protocol/result.ts";
import { AnthropicPlanner } from "./anthropic.ts";
import { RulePlanner, splitQuestion } from "./rules.ts";
import type { Planner, PlannerInput, PlanOutcome } from "./types.ts";

export type { TokenTally } from "./model-call.ts";
export type { Planned, Planner, PlannerInput, PlanOutcome, PlanRefusal } from "./types.ts";

export interface PlannerOptions {
  anthropicApiKey: string;
  anthropicBaseUrl?: string;
  anthropicModel: string;
  timeoutMs?: number;
}

export class ChoosingPlanner implements Planner {
  readonly kind = "anthropic" as const;
  private readonly rules = new RulePlanner();
  private readonly claude: Planner;

  constructor(claude: Planner) {
    this.claude = claude;
  }

  async plan(input: PlannerInput): Promise<PlanOutcome> {
    const read = this.rules.read(input);
    if (read.sure) return read.outcome;
    const planned = await this.claude.plan(input);
    const contradicts = planned.ok
      ? planned.value.plan.proposedSteps.find((st) => st.action && read.forbidden.includes(st.action))
      : undefined;
    if (planned.ok && contradicts) {
      // The model planned what the person said not to do (or the opposite of what they asked).
      return err({
        reason:
          `Claude planned ${contradicts.action}, which your task says not to do; nothing was planned. ${read.outcome.ok ? "" : read.outcome.error.reason}`.trim(),
        tokens: planned.value.tokens,
      });
    }
    if (planned.ok) {
      // Claude plans the steps; the question the person asked is read the same either way.
      const { question } = splitQuestion(input.intent);
      return question ? ok({ ...planned.value, question }) : planned;
    }
    const refused = planned.error;
    if (!refused.unavailable) return planned;
    if (read.outcome.ok)
      return ok({ ...read.outcome.value, notice: `${refused.reason}, planned offline.`, tokens: refused.tokens });
    return err({
      reason: `${refused.reason}, and I could not plan this offline: ${read.outcome.error.reason}`,
      unavailable: true,
      tokens: refused.tokens,
    });
  }
}

export function createPlanner(opts: PlannerOptions): Planner {
  if (!opts.anthropicApiKey) return new RulePlanner();
  return new ChoosingPlanner(
    new AnthropicPlanner({
      apiKey: opts.anthropicApiKey,
      baseURL: opts.anthropicBaseUrl,
      model: opts.anthropicModel,
      timeoutMs: opts.timeoutMs,
    }),
  );
}
