// A job with a code_task step is answered by the coding agent itself: its final message (what
// follows the agent's marker in the step's output) is the answer, with no second model call to
// summarise it. Only a step that succeeded counts; a failed or cancelled one leaves the answer to
// the usual rules, which state the step's error.
import { CODER_ANSWER_MARKER } from "../../protocol/index.ts";
import type { AnswerInput } from "./rules.ts";

const MAX_CODER_ANSWER = 1500;

export function coderAnswer(input: AnswerInput): string | null {
  const step = input.steps.findLast((s) => s.action === "code_task" && s.state === "succeeded");
  if (!step) return null;
  const at = step.output.lastIndexOf(`${CODER_ANSWER_MARKER}\n`);
  if (at < 0) return null;
  const text = step.output.slice(at + CODER_ANSWER_MARKER.length + 1).trim();
  if (!text) return null;
  return text.length <= MAX_CODER_ANSWER ? text : `${text.slice(0, MAX_CODER_ANSWER - 1)}…`;
}
