// Runs one execution step inside a workspace. Every step is re-checked against the action
// catalog here; commands are argv arrays (never a shell string) run contained with a scrubbed
// environment (run-process.ts); git runs hardened (git-safety.ts); file actions are confined and
// keep off secret files (fs-actions.ts); the agent's tokens are redacted from everything a step
// emits.
import {
  type ActionName,
  type ActionParams,
  checkStepRisk,
  type ExecutionStep,
  err,
  getAction,
  ok,
  type Result,
  writes,
} from "../../protocol/index.ts";
import { runCodeTask } from "./coder/run.ts";
import { listFiles, readOne, refuseSecret, searchCode, writeOne } from "./fs-actions.ts";
import { checkPushRemote, GitSafetyError, hardenedGit, PendingScan } from "./git-safety.ts";
import { runProcess } from "./run-process.ts";
import { runnerCommand } from "./runners.ts";
import { confine, SandboxError, workspaceRelative } from "./sandbox.ts";
import { Redactor, secretPathspecs } from "./secrets.ts";
import type { OutStream, StepContext, StepRun } from "./step.ts";

export type { OutStream, StepContext, StepRun } from "./step.ts";

const say = (ctx: StepContext, text: string) => ctx.out("system", Buffer.from(`${text}\n`));

/** The agent's own check: known action, valid params, shell allowed, risk not understated. */
export function recheckStep(step: ExecutionStep, allowShell: boolean): Result<Record<string, unknown>> {
  const checked = checkStepRisk(step);
  if (!checked.ok) return checked;
  if (checked.value.action.capability === "shell" && !allowShell) {
    return err("run_command is refused: this agent was not started with --allow-shell");
  }
  return ok(checked.value.params);
}

export async function executeStep(step: ExecutionStep, outer: StepContext): Promise<StepRun> {
  // Output, errors and the captured artifact pass through the redactor, one per stream so a
  // token split across two chunks of the same stream is still caught.
  const redactor = new Redactor(outer.redact ?? []);
  const streams = new Map<OutStream, Redactor>();
  const ctx: StepContext = redactor.active
    ? {
        ...outer,
        out: (stream, data) => {
          const r = streams.get(stream) ?? new Redactor(outer.redact ?? []);
          streams.set(stream, r);
          const safe = r.push(data);
          return safe.length > 0 ? outer.out(stream, safe) : Promise.resolve();
        },
      }
    : outer;
  const run = await executeChecked(step, ctx);
  for (const [stream, r] of streams) {
    const rest = r.flush();
    if (rest.length > 0) await outer.out(stream, rest);
  }
  if (!redactor.active) return run;
  return {
    ...run,
    ...(run.error ? { error: redactor.text(run.error) } : {}),
    ...(run.captured ? { captured: redactor.all(run.captured) } : {}),
  };
}

async function executeChecked(step: ExecutionStep, ctx: StepContext): Promise<StepRun> {
  const checked = recheckStep(step, ctx.allowShell);
  if (!checked.ok) {
    await say(ctx, `refused: ${checked.error}`);
    return { outcome: "failed", exitCode: null, error: checked.error };
  }
  try {
    return await dispatch(step.action as ActionName, checked.value, ctx);
  } catch (err) {
    const known = err instanceof SandboxError || err instanceof GitSafetyError;
    const error = known ? (err as Error).message : `step failed: ${(err as Error).message}`;
    await say(ctx, error);
    return { outcome: "failed", exitCode: null, error };
  }
}

/**
 * What a step can start before it is spawned, to overlap the work in between (the journal
 * write): a git step's config scan. Called when the step begins, after every earlier step of the
 * job has ended, so the scan sees whatever those steps wrote.
 */
export function prepareStep(step: ExecutionStep, workspace: string): Pick<StepContext, "gitScan"> {
  return getAction(step.action)?.capability === "git" ? { gitScan: new PendingScan(workspace) } : {};
}

/** A hardened git command (git-safety.ts), hooks off unless the action writes. */
async function git(action: ActionName, args: string[], ctx: StepContext): Promise<StepRun> {
  const def = getAction(action);
  const readOnly = def !== undefined && !writes(def.risk);
  // The step's prepared scan serves its first git command only (PendingScan.take).
  const { argv, env } = await hardenedGit(ctx.workspace, args, readOnly, ctx.gitScan);
  return runProcess(argv, ctx, { env, shown: ["git", ...args] });
}

function p<A extends ActionName>(params: Record<string, unknown>): ActionParams<A> {
  return params as ActionParams<A>;
}

async function dispatch(action: ActionName, params: Record<string, unknown>, ctx: StepContext): Promise<StepRun> {
  switch (action) {
    case "git_status":
      return git(action, ["status"], ctx);
    case "git_diff": {
      const q = p<"git_diff">(params);
      let path = ".";
      if (q.path) {
        const abs = await confine(ctx.workspace, q.path);
        await refuseSecret(ctx, q.path, abs);
        // Literal: a path is a path here, never pathspec magic such as ":(top)" or a glob.
        path = `:(literal)${(await workspaceRelative(ctx.workspace, abs)) || "."}`;
      }
      // Secret files stay out of the diff even when they are tracked.
      const args = ["diff", "--no-ext-diff", "--no-textconv", ...(q.staged ? ["--staged"] : [])];
      return git(action, [...args, "--", path, ...secretPathspecs(ctx.pathPolicy)], ctx);
    }
    case "git_log": {
      const q = p<"git_log">(params);
      return git(
        action,
        [
          "log",
          "--no-ext-diff",
          "--no-textconv",
          `-n${q.limit}`,
          ...(q.since ? [`--since=${q.since}`] : []),
          "--date=short",
          "--format=%h %ad %an  %s",
        ],
        ctx,
      );
    }
    case "git_commit": {
      const q = p<"git_commit">(params);
      if (q.addAll) {
        // Everything but secret files is staged.
        const added = await git(action, ["add", "-A", "--", ".", ...secretPathspecs(ctx.pathPolicy)], ctx);
        if (added.outcome !== "succeeded") return added;
      }
      return git(action, ["commit", "-m", q.message], ctx);
    }
    case "git_push": {
      const q = p<"git_push">(params);
      await checkPushRemote(ctx.workspace, q.remote);
      // The repository's remote.<name>.receivepack would run locally for a local remote; the
      // command-line option is the one setting that wins over it.
      return git(action, ["push", "--receive-pack=git-receive-pack", q.remote, ...(q.branch ? [q.branch] : [])], ctx);
    }
    case "run_command":
      return runProcess(p<"run_command">(params).argv, ctx);
    case "run_tests":
    case "build_project":
    case "lint":
    case "install_deps": {
      const q = params as { runner?: ActionParams<"run_tests">["runner"]; args?: string[] };
      const cmd = await runnerCommand(ctx.workspace, action, q.runner, q.args ?? []);
      if (!cmd.ok) {
        await say(ctx, cmd.error);
        return { outcome: "failed", exitCode: null, error: cmd.error };
      }
      return runProcess(cmd.value, ctx);
    }
    case "list_files":
      return listFiles(p<"list_files">(params), ctx);
    case "read_file":
      return readOne(p<"read_file">(params), ctx);
    case "search_code":
      return searchCode(p<"search_code">(params), ctx);
    case "write_file":
      return writeOne(p<"write_file">(params), ctx);
    case "code_task":
      return runCodeTask(p<"code_task">(params), ctx);
  }
}
