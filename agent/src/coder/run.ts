// Runs a code_task step: the Claude Agent SDK works on the instruction in the workspace with the
// laptop's own Claude credentials (they never leave it), every tool call decided by policy.ts, the
// asked ones put to the job's requester through the approver. Tool activity goes to the step's log
// as it happens; cancel and the per-step budget (turns, cost, time) abort the SDK's run, and the
// reason becomes the step's error. The coding agent's final message is the step's output.
import type { PermissionResult, Query, SDKMessage } from "@anthropic-ai/claude-agent-sdk";
import {
  type ActionParams,
  CODER_ANSWER_MARKER,
  err,
  ok,
  type PermissionDecision,
  type Result,
} from "../../../protocol/index.ts";
import type { StepContext, StepRun } from "../step.ts";
import type { Approver } from "./approver.ts";

export type { Approver } from "./approver.ts";

import { changedFiles, workspaceDiff } from "./changes.ts";
import { CODER_TOOLS, decideTool } from "./policy.ts";

/** No relay to a person: everything that needs an approval is denied, and says so. */
export const denyAll: Approver = async () => ({ decision: "deny", reason: "no one can be asked from this agent" });

export interface CoderBudget {
  maxTurns: number;
  /** Estimated spend in USD the SDK stops at (it reports its own estimate). */
  maxCostUsd: number;
}

export const DEFAULT_CODER_BUDGET: CoderBudget = { maxTurns: 30, maxCostUsd: 2 };

/** The laptop owner's budget (SKYNET_CODER_MAX_TURNS, SKYNET_CODER_MAX_COST_USD), bounded. */
export function budgetFromEnv(env: NodeJS.ProcessEnv = process.env): CoderBudget {
  const turns = Number(env.SKYNET_CODER_MAX_TURNS);
  const cost = Number(env.SKYNET_CODER_MAX_COST_USD);
  return {
    maxTurns: Number.isInteger(turns) && turns >= 1 && turns <= 200 ? turns : DEFAULT_CODER_BUDGET.maxTurns,
    maxCostUsd: Number.isFinite(cost) && cost > 0 && cost <= 100 ? cost : DEFAULT_CODER_BUDGET.maxCostUsd,
  };
}

export interface CoderContext extends StepContext {
  approve?: Approver;
  budget?: CoderBudget;
  /** The model name passed to the SDK (its default when unset). */
  model?: string;
  /** The SDK process's whole environment; unset, it inherits the agent's (the laptop's credentials). */
  sdkEnv?: Record<string, string>;
}

const say = (ctx: StepContext, text: string) => ctx.out("system", Buffer.from(`[coder] ${text}\n`));
const oneLine = (s: string, max = 200) => {
  const flat = s.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

/** What a tool call is about, for the log (never the whole content of a write). */
function targetOf(tool: string, input: Record<string, unknown>): string {
  const pick = input.command ?? input.file_path ?? input.pattern ?? input.path;
  return typeof pick === "string" ? oneLine(pick) : tool;
}

function withoutSkynet(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !k.startsWith("SKYNET_")) out[k] = v;
  return out;
}

/** The SDK's end-of-run reasons, as a person reads them. */
const RESULT_REASONS: Record<string, string> = {
  error_max_turns: "the coding agent used up its turn budget",
  error_max_budget_usd: "the coding agent used up its cost budget",
  error_during_execution: "the coding agent stopped with an error",
};

export async function runCodeTask(q: ActionParams<"code_task">, ctx: CoderContext): Promise<StepRun> {
  const approve = ctx.approve ?? denyAll;
  const budget = ctx.budget ?? budgetFromEnv();
  const before = await changedFiles(ctx.workspace);
  const abort = new AbortController();
  let stopReason: string | undefined;
  let active: Query | undefined;
  // Stopping asks the SDK to interrupt the turn (a pending approval answers "deny, interrupt"),
  // then kills its process if it has not ended within a few seconds.
  const stopping = new AbortController();
  let killTimer: NodeJS.Timeout | undefined;
  const stop = (why: string) => {
    if (stopReason) return;
    stopReason = why;
    stopping.abort();
    void active?.interrupt().catch(() => {});
    killTimer = setTimeout(() => {
      abort.abort();
      active?.close();
    }, 3000);
    killTimer.unref();
  };
  const onCancel = () => stop("cancelled");
  if (ctx.signal.aborted) onCancel();
  ctx.signal.addEventListener("abort", onCancel, { once: true });
  const timer = setTimeout(
    () => stop(`the coding agent ran out of time (${Math.round(ctx.timeoutMs / 1000)} s)`),
    ctx.timeoutMs,
  );
  const policy = { workspace: ctx.workspace, pathPolicy: ctx.pathPolicy, agentConfigPath: ctx.agentConfigPath };
  const names = new Map<string, string>();

  const canUseTool = async (
    tool: string,
    input: Record<string, unknown>,
    opts: { signal: AbortSignal },
  ): Promise<PermissionResult> => {
    const verdict = await decideTool(policy, tool, input);
    if (verdict.kind === "deny") {
      await say(ctx, `denied ${tool} ${targetOf(tool, input)}: ${verdict.reason}`);
      return { behavior: "deny", message: verdict.reason };
    }
    if (verdict.kind === "allow") return { behavior: "allow", updatedInput: input };
    await say(ctx, `asking the requester: ${tool} ${oneLine(verdict.ask.target)}`);
    const signal = AbortSignal.any([opts.signal, stopping.signal]);
    // A cancelled run stops waiting for a person at once: the approver may never answer.
    const decided = await Promise.race([
      approve(verdict.ask, signal).catch((e: unknown) => ({
        decision: "deny" as const,
        reason: `the requester could not be asked: ${oneLine(String((e as Error).message ?? e))}`,
      })),
      new Promise<{ decision: PermissionDecision; reason: string }>((done) => {
        const stopped = () => done({ decision: "deny", reason: "the run was stopped" });
        if (signal.aborted) stopped();
        else signal.addEventListener("abort", stopped, { once: true });
      }),
    ]);
    await say(
      ctx,
      `${decided.decision === "allow" ? "approved" : "denied"}: ${tool} ${oneLine(verdict.ask.target)}${decided.reason ? ` (${decided.reason})` : ""}`,
    );
    return decided.decision === "allow"
      ? { behavior: "allow", updatedInput: input }
      : {
          behavior: "deny",
          message: `the requester did not approve this${decided.reason ? `: ${decided.reason}` : ""}`,
        };
  };

  let finalText: string | undefined;
  let resultError: string | undefined;
  try {
    // Loaded on the first code_task only: the SDK costs an agent that never codes ~15 MB of RSS.
    const { query } = await import("@anthropic-ai/claude-agent-sdk");
    const run = query({
      prompt: q.instruction,
      options: {
        cwd: ctx.workspace,
        abortController: abort,
        maxTurns: budget.maxTurns,
        maxBudgetUsd: budget.maxCostUsd,
        // Manual approvals through canUseTool; nothing loaded from settings files can widen them.
        permissionMode: "default",
        settingSources: [],
        tools: [...CODER_TOOLS],
        allowedTools: [],
        canUseTool,
        // The SDK allows some reads inside its working directory without asking; the hook sees every
        // call first, so a refused path (outside, secret) is denied before any rule can allow it.
        hooks: {
          PreToolUse: [
            {
              hooks: [
                async (input) => {
                  if (input.hook_event_name !== "PreToolUse") return {};
                  const toolInput = (input.tool_input ?? {}) as Record<string, unknown>;
                  names.set(input.tool_use_id, input.tool_name);
                  await say(ctx, `tool ${input.tool_name}: ${targetOf(input.tool_name, toolInput)}`);
                  const verdict = await decideTool(policy, input.tool_name, toolInput);
                  if (verdict.kind === "deny") {
                    await say(ctx, `denied ${input.tool_name}: ${verdict.reason}`);
                    return {
                      hookSpecificOutput: {
                        hookEventName: "PreToolUse",
                        permissionDecision: "deny",
                        permissionDecisionReason: verdict.reason,
                      },
                    };
                  }
                  // Anything needing a person goes to canUseTool whatever a rule or mode says.
                  return verdict.kind === "ask"
                    ? { hookSpecificOutput: { hookEventName: "PreToolUse", permissionDecision: "ask" } }
                    : {};
                },
              ],
            },
          ],
        },
        sandbox: {
          enabled: true,
          failIfUnavailable: false,
          autoAllowBashIfSandboxed: false,
          allowUnsandboxedCommands: false,
        },
        persistSession: false,
        // A fixed title: the SDK would otherwise spend a model call naming the session.
        title: "SKYNET code_task",
        ...(ctx.model ? { model: ctx.model } : {}),
        // The laptop's own environment (its Claude credentials), less SKYNET's: the agent's token
        // would otherwise be one `env` away from any command the coding agent runs.
        env: ctx.sdkEnv ?? withoutSkynet(process.env),
        stderr: () => {},
      },
    });
    active = run;
    if (stopReason) run.close();
    for await (const message of run) {
      const outcome = await onMessage(message, ctx, names);
      if (outcome?.ok) finalText = outcome.value;
      else if (outcome?.error) resultError = outcome.error;
    }
  } catch (e) {
    if (!stopReason && !resultError) resultError = `the coding agent failed: ${oneLine((e as Error).message, 500)}`;
  } finally {
    clearTimeout(timer);
    clearTimeout(killTimer);
    ctx.signal.removeEventListener("abort", onCancel);
  }

  const after = await changedFiles(ctx.workspace);
  const changed = [...after]
    .filter(([path, status]) => before.get(path) !== status)
    .map(([path, status]) => `${status} ${path}`);
  await say(ctx, changed.length ? `files changed:\n${changed.join("\n")}` : "no files changed");
  const diff = changed.length ? await workspaceDiff(ctx.workspace, ctx.pathPolicy) : undefined;
  if (finalText) {
    // The marker tells the Worker where the coding agent's final message starts (its answer).
    await ctx.out("system", Buffer.from(`${CODER_ANSWER_MARKER}\n`));
    await ctx.out("stdout", Buffer.from(`${finalText.replaceAll(CODER_ANSWER_MARKER, "[coder]")}\n`));
  }

  if (stopReason === "cancelled" || (ctx.signal.aborted && !resultError)) {
    return { outcome: "cancelled", exitCode: null, error: "cancelled", ...(diff ? { captured: diff } : {}) };
  }
  const error = stopReason ?? resultError;
  if (error) return { outcome: "failed", exitCode: null, error, ...(diff ? { captured: diff } : {}) };
  return { outcome: "succeeded", exitCode: 0, ...(diff ? { captured: diff } : {}) };
}

/** A result message's final text, or why the run failed; undefined for any other message. */
async function onMessage(
  message: SDKMessage,
  ctx: StepContext,
  names: Map<string, string>,
): Promise<Result<string> | undefined> {
  if (message.type === "user") {
    const content = message.message.content;
    if (!Array.isArray(content)) return undefined;
    for (const block of content) {
      if (typeof block === "object" && block !== null && "type" in block && block.type === "tool_result") {
        const tool = names.get(block.tool_use_id) ?? "tool";
        await say(ctx, `${tool} ${block.is_error ? "failed or was refused" : "done"}`);
      }
    }
    return undefined;
  }
  if (message.type !== "result") return undefined;
  if (message.subtype === "success") {
    return message.is_error ? err(oneLine(message.result, 1000)) : ok(message.result);
  }
  const reason = RESULT_REASONS[message.subtype] ?? `the coding agent stopped (${message.subtype})`;
  return err(`${reason} after ${message.num_turns} turn(s), about $${message.total_cost_usd.toFixed(4)}`);
}
