// The answer written without a model: what each step's result and output show for sure (exit
// codes, failing test names as the runner printed them, files changed, commits), nothing more.
// Where the output does not show something, the answer says so instead of guessing.
import type { TerminalStatus } from "../../protocol/index.ts";
import { failingTests } from "./failures.ts";

export interface AnswerStep {
  stepId: string;
  action: string;
  /** pending, running, succeeded, failed, cancelled, skipped */
  state: string;
  exitCode: number | null;
  error: string | null;
  output: string;
}

export interface AnswerInput {
  intent: string;
  question: string | null;
  status: TerminalStatus;
  error: string | null;
  steps: AnswerStep[];
}

const MAX_ANSWER = 700;
const exit = (s: AnswerStep): string => (s.exitCode !== null ? ` (exit ${s.exitCode})` : "");
const list = (names: string[], max = 8): string =>
  names.length <= max ? names.join(", ") : `${names.slice(0, max).join(", ")} and ${names.length - max} more`;

function testsSentence(s: AnswerStep): string {
  if (s.state === "succeeded") return "The tests passed.";
  if (s.state !== "failed") return `The tests did not run to the end (${s.state}).`;
  const names = failingTests(s.output);
  if (names.length === 0) {
    return `The tests failed${exit(s)}; the output does not name the failing tests (see /logs).`;
  }
  return `${names.length} test${names.length === 1 ? "" : "s"} failed${exit(s)}: ${list(names)}.`;
}

/** Files git status lists as changed or untracked. */
function statusSentence(output: string): string {
  if (/nothing to commit, working tree clean/.test(output)) return "The working tree is clean.";
  const changed = [...output.matchAll(/^\s+(?:modified|new file|deleted|renamed|typechange):\s+(.+)$/gm)].map((m) =>
    (m[1] ?? "").trim(),
  );
  const untrackedAt = output.indexOf("Untracked files:");
  const untracked =
    untrackedAt < 0
      ? []
      : output
          .slice(untrackedAt)
          .split("\n")
          .slice(1)
          .filter((l) => /^\t/.test(l))
          .map((l) => l.trim());
  const parts: string[] = [];
  if (changed.length) parts.push(`changed: ${list([...new Set(changed)])}`);
  if (untracked.length) parts.push(`untracked: ${list(untracked)}`);
  return parts.length ? `Files ${parts.join("; ")}.` : "git status ran; its output lists no changed files.";
}

function stepSentence(s: AnswerStep): string {
  if (s.state === "skipped" || s.state === "pending") return "";
  if (s.state === "cancelled") return `${s.action} was cancelled.`;
  if (s.action === "run_tests") return testsSentence(s);
  if (s.state === "failed") {
    const why = s.error ? `: ${s.error.slice(0, 200)}` : "";
    return `${s.action} failed${exit(s)}${why}.`;
  }
  switch (s.action) {
    case "git_status":
      return statusSentence(s.output);
    case "git_commit": {
      const m = /^\[([^\s\]]+)(?: \(root-commit\))? ([0-9a-f]{6,40})\]/m.exec(s.output);
      return m ? `Committed ${m[2]} on ${m[1]}.` : "Committed.";
    }
    case "git_push":
      return "Pushed.";
    case "git_log": {
      const n = s.output.split("\n").filter((l) => /^[0-9a-f]{6,40} /.test(l)).length;
      return n === 0 ? "No commits matched." : `${n} commit${n === 1 ? "" : "s"} listed.`;
    }
    case "build_project":
      return "The build succeeded.";
    case "lint":
      return "Lint passed.";
    case "install_deps":
      return "Dependencies installed.";
    default:
      return `${s.action} succeeded.`;
  }
}

export function ruleAnswer(input: AnswerInput): string {
  const sentences = input.steps.map(stepSentence).filter(Boolean);
  if (input.status === "CANCELLED" && sentences.length === 0) {
    sentences.push(`The job was cancelled${input.error ? `: ${input.error.slice(0, 200)}` : ""}.`);
  }
  if (input.status === "FAILED" && !input.steps.some((s) => s.state === "failed") && input.error) {
    sentences.push(`The job failed: ${input.error.slice(0, 200)}.`);
  }
  const text = sentences.join(" ") || "Nothing ran, so there is nothing to report.";
  return text.length <= MAX_ANSWER ? text : `${text.slice(0, MAX_ANSWER - 1)}…`;
}
