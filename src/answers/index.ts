// Writes the job's answer once it ended: Claude's from bounded excerpts when a key is set, else
// (or when the model fails) the rule answer. Run from the job's outbox before the final
// notification; it never throws, so the notification is never held up for good.
import { isTerminal, type JobAnswer } from "../../protocol/index.ts";
import type { Config } from "../config.ts";
import type { JobContext } from "../jobs/job-context.ts";
import type { JobState } from "../jobs/job-state.ts";
import type { LogBuffer } from "../jobs/log-buffer.ts";
import { errorMessage, log } from "../lib/log.ts";
import { addTallies } from "../planners/model-call.ts";
import { claudeAnswer } from "./claude.ts";
import { coderAnswer } from "./coder.ts";
import { type AnswerInput, ruleAnswer } from "./rules.ts";

export { ruleAnswer } from "./rules.ts";

/** Did a step run (so the output has something to answer from)? */
const anythingRan = (state: JobState) => state.steps.some((s) => s.state !== "pending" && s.state !== "skipped");

/** What an answer is written from: the job and each step's output (read from the job's log). */
export function answerInput(state: JobState, logs: LogBuffer): AnswerInput {
  const outputs = logs.stepOutputs(state.attempt);
  return {
    intent: state.intent,
    question: state.question ?? null,
    status: state.status as AnswerInput["status"],
    error: state.error,
    steps: state.steps.map((s) => ({
      stepId: s.stepId,
      action: s.action,
      state: s.state,
      exitCode: s.exitCode,
      error: s.error,
      output: outputs.get(s.stepId) ?? "",
    })),
  };
}

/**
 * The answer of a job that just ended, when it needs no model call (no API key, or the coding
 * agent wrote its own): computed here, so the finishing commit carries it. Null when Claude is
 * to write it (the outbox's "answer" item does, after the commit) or nothing ran.
 */
export function answerAtCommit(
  state: JobState,
  logs: LogBuffer,
  config: Pick<Config, "anthropicApiKey">,
): JobAnswer | null {
  if (!isTerminal(state.status) || state.answer || !anythingRan(state)) return null;
  const input = answerInput(state, logs);
  const coder = coderAnswer(input);
  if (!coder && config.anthropicApiKey) return null;
  return { text: coder ?? ruleAnswer(input), by: coder ? "claude" : "rules", at: new Date().toISOString() };
}

export async function writeAnswer(
  job: Pick<JobContext, "load" | "commit" | "config" | "logs">,
): Promise<"answer" | "answer_rules" | "answer_skipped"> {
  const state = job.load();
  if (!state || !isTerminal(state.status) || state.answer) return "answer_skipped";
  // Nothing ran (denied, cancelled or failed before a step started): the reason says it all.
  if (!anythingRan(state)) return "answer_skipped";
  let input: AnswerInput;
  try {
    input = answerInput(state, job.logs);
  } catch (err) {
    log("warn", "answer: could not read the steps' output", { jobId: state.id, error: errorMessage(err) });
    return "answer_skipped";
  }
  const coder = coderAnswer(input);
  let text = coder ?? ruleAnswer(input);
  // The coding agent (Claude, on the laptop) wrote its own answer: no second model call.
  let by: "claude" | "rules" = coder ? "claude" : "rules";
  let tokens = null;
  if (job.config.anthropicApiKey && !coder) {
    try {
      const claude = await claudeAnswer(input, {
        apiKey: job.config.anthropicApiKey,
        baseURL: job.config.anthropicBaseUrl || undefined,
        model: job.config.anthropicModel,
      });
      if (claude.ok) {
        text = claude.value.text;
        tokens = claude.value.tokens;
        by = "claude";
      } else {
        tokens = claude.error.tokens;
        log("warn", "answer: Claude failed; the rule answer is used", { jobId: state.id, error: claude.error.reason });
      }
    } catch (err) {
      log("warn", "answer: Claude failed; the rule answer is used", { jobId: state.id, error: errorMessage(err) });
    }
  }
  const s = job.load();
  if (!s || s.answer) return "answer_skipped";
  s.answer = { text, by, at: new Date().toISOString() };
  if (tokens && tokens.calls > 0) s.tokens = addTallies(s.tokens, tokens);
  // Committed while the outbox drains: the ledger row and notification it adds go in this drain.
  job.commit(s, [{ kind: "notify" }]);
  return by === "claude" ? "answer" : "answer_rules";
}
