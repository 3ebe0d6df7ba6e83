// The offline rule planner: splits an intent into clauses and maps each to a catalog action by
// its phrases. Deterministic, no network; the default when no Anthropic key is configured.
import {
  ACTION_CATALOG,
  classifyStep,
  err,
  MAX_INTENT_SUMMARY_CHARS,
  ok,
  type PlanSpec,
  PlanSpecSchema,
  type PlanStep,
  planRisk,
} from "../../protocol/index.ts";
import { FREE_TEXT_ACTIONS, readClause } from "./phrasing.ts";
import type { Planner, PlannerInput, PlanOutcome } from "./types.ts";

const SEPARATORS = /\s*(?:,\s*(?:and\s+then|then|and|but)?|;|\band\s+then\b|\bthen\b|\band\b|\bbut\b)\s*/i;
const SEPARATORS_ALL = new RegExp(SEPARATORS.source, "gi");

/** The action a clause reads as, if it reads as one. */
function actionOf(clause: string): string | undefined {
  const r = readClause(clause);
  return r.kind === "step" ? r.action : undefined;
}

/**
 * A closing request for an answer ("…, and tell me which failed") is the job's question, not a
 * step. An intent that is itself a question ("what changed since yesterday?") is its own question.
 */
const TELL_ME =
  /(?:^|,?\s+(?:and\s+(?:then\s+)?|then\s+)|,\s*)(?:tell|show|let)\s+me\s+(?:know\s+)?(?<q>(?:which|what|whether|if|why|how|who|where|when|the\s+(?:failures?|failing|errors?|result))\b.*)$/i;
const QUESTION_START = /^(?:what|which|why|how|who|where|when|are|is|do|does|did|has|have)\b/i;

export function splitQuestion(intent: string): { rest: string; question?: string } {
  const trimmed = intent.trim();
  const m = TELL_ME.exec(trimmed);
  if (m?.groups?.q && m.index > 0) {
    return { rest: trimmed.slice(0, m.index), question: m.groups.q.replace(/[.!?\s]+$/, "") };
  }
  // "can you run the tests?" is a request said politely, not a question to answer.
  if (/^(?:please\s+)?(?:can|could|would|will)\s+you\b/i.test(trimmed)) return { rest: trimmed };
  if (/\?\s*$/.test(trimmed) || QUESTION_START.test(trimmed))
    return { rest: trimmed, question: trimmed.replace(/\s+/g, " ") };
  return { rest: trimmed };
}
/** A closing "…, and commit" / "then push to origin" after free text is a step of its own. */
const TRAILING_GIT = /^(?:git\s+)?(?:commit|push)\b/i;

/**
 * Peels trailing commit/push clauses off a free-text clause: "create file a.txt with hi, then
 * commit and push" is write_file + git_commit + git_push, not a file whose content ends in "push".
 * A clause is peeled only if what remains is still the same free-text action.
 */
function peelTrailingGit(clause: string, action: string): string[] {
  const trailing: string[] = [];
  let head = clause;
  for (;;) {
    const last = [...head.matchAll(SEPARATORS_ALL)].filter((m) => m.index > 0).at(-1);
    if (!last) break;
    const segment = head.slice(last.index + last[0].length).trim();
    const segmentAction = TRAILING_GIT.test(segment) ? actionOf(segment) : undefined;
    if (segmentAction !== "git_commit" && segmentAction !== "git_push") break;
    const rest = head.slice(0, last.index);
    if (actionOf(rest) !== action) break;
    trailing.unshift(segment);
    head = rest;
  }
  return [head, ...trailing];
}

/**
 * Splits "check git status, run tests, and build project" into clauses.
 *
 * Free text (the choice made here): once a clause starts an action that captures free text to
 * the end of its clause (run command …, create file … with …, search the code for …, commit with
 * message …), that action takes the REST OF THE INTENT as its text, separators included — so
 * "create file a.txt with salt and pepper" and "run command echo a, b" stay whole. The only
 * exception is a closing commit/push clause ("…, then commit and push"), which becomes its own
 * step (see peelTrailingGit). Put free-text steps last; anything after them is part of the text.
 */
export function splitClauses(intent: string): string[] {
  const clauses: string[] = [];
  let rest = intent.trim().replace(/[.!?]+$/, "");
  while (rest.length > 0) {
    const m = SEPARATORS.exec(rest);
    const head = m ? rest.slice(0, m.index) : rest;
    const headAction = head ? actionOf(head) : undefined;
    if (headAction && FREE_TEXT_ACTIONS.has(headAction)) {
      if (actionOf(rest) === headAction) {
        clauses.push(...peelTrailingGit(rest, headAction));
        break;
      }
    }
    if (head.trim()) clauses.push(head.trim());
    if (!m) break;
    rest = rest.slice(m.index + m[0].length);
  }
  return clauses;
}

const EXAMPLES = [
  "check git status",
  "show the last 5 commits",
  "run the tests",
  "build the project",
  "create a new file notes.txt with hello",
  "search the code for TODO",
  "run command npm --version",
];

const ARTIFACTS: Record<string, string> = {
  run_tests: "test output log",
  build_project: "build output log",
  lint: "lint report",
};

function describeStep(action: string, params: Record<string, unknown>, clause: string): string {
  switch (action) {
    case "write_file":
      return `Create ${String(params.path)}`;
    case "run_command":
      return `Run ${(params.argv as string[]).join(" ")}`;
    case "search_code":
      return `Search the code for "${String(params.pattern)}"${params.path ? ` in ${String(params.path)}` : ""}`;
    case "read_file":
      return `Read ${String(params.path)}`;
    case "list_files":
      return params.path === "." ? "List the workspace's files" : `List files in ${String(params.path)}`;
    case "git_log":
      return params.since
        ? `Show commits since ${String(params.since)}`
        : `Show the last ${String(params.limit)} commits`;
    case "git_diff":
      return `Show ${params.staged ? "staged" : "uncommitted"} changes${params.path ? ` in ${String(params.path)}` : ""}`;
    case "git_commit":
      return `Commit with message "${String(params.message)}"`;
    case "git_push":
      return `Push to ${String(params.remote)}${params.branch ? ` ${String(params.branch)}` : ""}`;
    default:
      return ACTION_CATALOG.find((a) => a.name === action)?.description ?? clause;
  }
}

export class RulePlanner implements Planner {
  readonly kind = "rules" as const;

  async plan(input: PlannerInput): Promise<PlanOutcome> {
    return this.read(input).outcome;
  }

  /**
   * The outcome; whether every clause was read whole (then no model is needed to plan it); and the
   * actions the person said not to do, or named the opposite of, which no planner may plan.
   */
  read(input: PlannerInput): { outcome: PlanOutcome; sure: boolean; forbidden: string[] } {
    const forbidden: string[] = [];
    const r = this.build(input, forbidden);
    const outcome = "sure" in r ? r : { outcome: r, sure: false };
    return { outcome: outcome.outcome, sure: outcome.outcome.ok && outcome.sure, forbidden };
  }

  private build(input: PlannerInput, forbidden: string[]): PlanOutcome | { outcome: PlanOutcome; sure: boolean } {
    let sure = true;
    let refusal: string | null = null;
    const { rest, question } = splitQuestion(input.intent);
    const clauses = splitClauses(rest);
    if (clauses.length === 0) {
      return err({ reason: `The task is empty. Try phrases like: ${EXAMPLES.join("; ")}.` });
    }
    const steps: PlanStep[] = [];
    const understood: string[] = [];
    const notUnderstood: string[] = [];
    for (const clause of clauses) {
      const reading = readClause(clause);
      if (reading.kind === "refuse") {
        // Every clause is read, so all that the person said not to do is known.
        if (reading.forbids) forbidden.push(reading.forbids);
        refusal ??= reading.reason;
        continue;
      }
      if (reading.kind === "none") {
        notUnderstood.push(clause);
        continue;
      }
      sure &&= reading.sure;
      const classified = classifyStep(reading.action, reading.params);
      if (!classified.ok) return err({ reason: `"${clause}": ${classified.error}` });
      const { action, params, risk } = classified.value;
      understood.push(`"${clause}" → ${action.name}`);
      steps.push({
        description: describeStep(action.name, params, clause).slice(0, 500),
        risk,
        action: action.name,
        params,
      });
    }
    if (refusal) return err({ reason: refusal });
    if (notUnderstood.length > 0 || steps.length === 0) {
      const got = understood.length > 0 ? `I understood ${understood.join(", ")}; ` : "";
      const missing = notUnderstood.length > 0 ? notUnderstood : [input.intent];
      return err({
        reason:
          `${got}I could not map ${missing.map((c) => `"${c}"`).join(", ")} to an action I can run. ` +
          `Try phrases like: ${EXAMPLES.join("; ")}.`,
      });
    }
    if (steps.length > 20) return err({ reason: "that is more than 20 steps; split it into smaller tasks" });
    const plan: PlanSpec = {
      jobId: input.jobId,
      userIntentSummary: input.intent.slice(0, MAX_INTENT_SUMMARY_CHARS),
      proposedSteps: steps,
      estimatedRiskLevel: planRisk(steps),
      expectedArtifacts: steps.flatMap((s) => (s.action && ARTIFACTS[s.action] ? [ARTIFACTS[s.action] ?? ""] : [])),
      planner: "rules",
      createdAt: new Date().toISOString(),
    };
    const parsed = PlanSpecSchema.safeParse(plan);
    if (!parsed.success) return err({ reason: `the plan did not validate: ${parsed.error.issues[0]?.message}` });
    const outcome: PlanOutcome = question
      ? ok({ plan: parsed.data, question: question.slice(0, 500) })
      : ok({ plan: parsed.data });
    return { outcome, sure };
  }
}
