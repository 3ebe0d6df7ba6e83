// What reading one clause of an intent comes to (readClause in phrasing.ts, the phrasings in
// phrasings.ts): a step, a refusal, or nothing.
import type { ActionName } from "../../protocol/index.ts";

export type ClauseReading =
  | { kind: "step"; action: ActionName; params: Record<string, unknown>; sure: boolean }
  /** `forbids`: the action the clause says not to do (or names the opposite of): never to be planned. */
  | { kind: "refuse"; reason: string; forbids?: ActionName }
  | { kind: "none" };
