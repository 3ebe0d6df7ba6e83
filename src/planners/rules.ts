// The offline rule planner: splits an intent into clauses and maps each to a catalog action by
// its phrases. Deterministic, no network; the default when no Anthropic key is configured.
import {
  ACTION_CATALOG,
  checkActionParams,
  matchPhrase,
  maxRisk,
  type PlanSpec,
  PlanSpecSchema,
  type PlanStep,
} from "../../protocol/index.ts";
import type { Planner, PlannerInput, PlanOutcome } from "./types.ts";

/** Actions whose phrase captures free text to the end of the clause (a command, file content). */
const FREE_TEXT_ACTIONS = new Set(["run_command", "write_file", "search_code", "git_commit"]);

const SEPARATORS = /\s*(?:,\s*(?:and\s+then|then|and)?|;|\band\s+then\b|\bthen\b|\band\b)\s*/i;
const SEPARATORS_ALL = new RegExp(SEPARATORS.source, "gi");

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
    const segmentAction = TRAILING_GIT.test(segment) ? matchPhrase(segment)?.action.name : undefined;
    if (segmentAction !== "git_commit" && segmentAction !== "git_push") break;
    const rest = head.slice(0, last.index);
    if (matchPhrase(rest)?.action.name !== action) break;
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
  let rest = intent.trim().replace(/[.!]+$/, "");
  while (rest.length > 0) {
    const m = SEPARATORS.exec(rest);
    const head = m ? rest.slice(0, m.index) : rest;
    const headMatch = head ? matchPhrase(head) : undefined;
    if (headMatch && FREE_TEXT_ACTIONS.has(headMatch.action.name)) {
      const whole = matchPhrase(rest);
      if (whole && whole.action.name === headMatch.action.name) {
        clauses.push(...peelTrailingGit(rest, whole.action.name));
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
      return `Search the code for "${String(params.pattern)}"`;
    case "read_file":
      return `Read ${String(params.path)}`;
    default:
      return ACTION_CATALOG.find((a) => a.name === action)?.description ?? clause;
  }
}

export class RulePlanner implements Planner {
  readonly kind = "rules" as const;

  async plan(input: PlannerInput): Promise<PlanOutcome> {
    const clauses = splitClauses(input.intent);
    if (clauses.length === 0) {
      return { ok: false, reason: `The task is empty. Try phrases like: ${EXAMPLES.join("; ")}.` };
    }
    const steps: PlanStep[] = [];
    const understood: string[] = [];
    const notUnderstood: string[] = [];
    for (const clause of clauses) {
      const match = matchPhrase(clause);
      if (!match) {
        notUnderstood.push(clause);
        continue;
      }
      const check = checkActionParams(match.action.name, match.params);
      if (!check.ok) return { ok: false, reason: `"${clause}": ${check.error}` };
      understood.push(`"${clause}" → ${check.action.name}`);
      steps.push({
        description: describeStep(check.action.name, check.params, clause).slice(0, 500),
        risk: check.action.risk,
        action: check.action.name,
        params: check.params,
      });
    }
    if (notUnderstood.length > 0 || steps.length === 0) {
      const got = understood.length > 0 ? `I understood ${understood.join(", ")}; ` : "";
      const missing = notUnderstood.length > 0 ? notUnderstood : [input.intent];
      return {
        ok: false,
        reason:
          `${got}I could not map ${missing.map((c) => `"${c}"`).join(", ")} to an action I can run. ` +
          `Try phrases like: ${EXAMPLES.join("; ")}.`,
      };
    }
    if (steps.length > 20) return { ok: false, reason: "that is more than 20 steps; split it into smaller tasks" };
    const plan: PlanSpec = {
      jobId: input.jobId,
      userIntentSummary: input.intent.slice(0, 1000),
      proposedSteps: steps,
      estimatedRiskLevel: maxRisk(...steps.map((s) => s.risk)),
      expectedArtifacts: steps.flatMap((s) => (s.action && ARTIFACTS[s.action] ? [ARTIFACTS[s.action] ?? ""] : [])),
      planner: "rules",
      createdAt: new Date().toISOString(),
    };
    const parsed = PlanSpecSchema.safeParse(plan);
    if (!parsed.success) return { ok: false, reason: `the plan did not validate: ${parsed.error.issues[0]?.message}` };
    return { ok: true, plan: parsed.data };
  }
}
