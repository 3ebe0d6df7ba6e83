// Runs one execution step inside a workspace. Every step is re-checked against the action
// catalog here; commands are argv arrays (never a shell string) in their own process group, with
// a scrubbed environment, a timeout, an output cap and cancel as SIGTERM then SIGKILL.
import { spawn } from "node:child_process";
import { lstat, open, readdir, readFile, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import {
  type ActionName,
  type ActionParams,
  checkActionParams,
  type ExecutionStep,
  riskAtLeast,
} from "../../protocol/index.ts";
import { runnerCommand } from "./runners.ts";
import { confine, confineForWrite, SandboxError, scrubbedEnv } from "./sandbox.ts";

export type OutStream = "stdout" | "stderr" | "system";

export interface StepContext {
  workspace: string;
  allowShell: boolean;
  timeoutMs: number;
  /** Bytes of output forwarded per step; the rest is drained and replaced by a marker. */
  outputCapBytes: number;
  cancelGraceMs: number;
  /** Resolves when the sink can take more (backpressure). */
  out(stream: OutStream, data: Buffer): Promise<void>;
  signal: AbortSignal;
  /** Bytes of output kept for an artifact (0 to keep none). */
  captureBytes?: number;
}

export interface StepRun {
  outcome: "succeeded" | "failed" | "cancelled";
  exitCode: number | null;
  error?: string;
  captured?: Buffer;
}

const say = (ctx: StepContext, text: string) => ctx.out("system", Buffer.from(`${text}\n`));

/** The agent's own check: known action, valid params, shell allowed, risk not understated. */
export function recheckStep(
  step: ExecutionStep,
  allowShell: boolean,
): { ok: true; params: Record<string, unknown> } | { ok: false; error: string } {
  const check = checkActionParams(step.action, step.params);
  if (!check.ok) return check;
  if (!riskAtLeast(step.risk, check.action.risk)) {
    return { ok: false, error: `${step.action} is ${check.action.risk} but the step claims ${step.risk}` };
  }
  if (check.action.capability === "shell" && !allowShell) {
    return { ok: false, error: "run_command is refused: this agent was not started with --allow-shell" };
  }
  return { ok: true, params: check.params };
}

export async function executeStep(step: ExecutionStep, ctx: StepContext): Promise<StepRun> {
  const checked = recheckStep(step, ctx.allowShell);
  if (!checked.ok) {
    await say(ctx, `refused: ${checked.error}`);
    return { outcome: "failed", exitCode: null, error: checked.error };
  }
  try {
    return await dispatch(step.action as ActionName, checked.params, ctx);
  } catch (err) {
    const error = err instanceof SandboxError ? err.message : `step failed: ${(err as Error).message}`;
    await say(ctx, error);
    return { outcome: "failed", exitCode: null, error };
  }
}

function p<A extends ActionName>(params: Record<string, unknown>): ActionParams<A> {
  return params as ActionParams<A>;
}

async function dispatch(action: ActionName, params: Record<string, unknown>, ctx: StepContext): Promise<StepRun> {
  switch (action) {
    case "git_status":
      return runProcess(["git", "status"], ctx);
    case "git_diff": {
      const q = p<"git_diff">(params);
      const argv = ["git", "diff", ...(q.staged ? ["--staged"] : [])];
      if (q.path) argv.push("--", relative(ctx.workspace, await confine(ctx.workspace, q.path)) || ".");
      return runProcess(argv, ctx);
    }
    case "git_log":
      return runProcess(
        ["git", "log", `-n${p<"git_log">(params).limit}`, "--date=short", "--format=%h %ad %an  %s"],
        ctx,
      );
    case "git_commit": {
      const q = p<"git_commit">(params);
      if (q.addAll) {
        const added = await runProcess(["git", "add", "-A"], ctx);
        if (added.outcome !== "succeeded") return added;
      }
      return runProcess(["git", "commit", "-m", q.message], ctx);
    }
    case "git_push": {
      const q = p<"git_push">(params);
      return runProcess(["git", "push", q.remote, ...(q.branch ? [q.branch] : [])], ctx);
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
      return runProcess(cmd.argv, ctx);
    }
    case "list_files":
      return listFiles(p<"list_files">(params), ctx);
    case "read_file":
      return readOne(p<"read_file">(params), ctx);
    case "search_code":
      return searchCode(p<"search_code">(params), ctx);
    case "write_file":
      return writeOne(p<"write_file">(params), ctx);
  }
}

/** Spawns argv in its own process group and streams its output through ctx.out. */
export function runProcess(argv: string[], ctx: StepContext): Promise<StepRun> {
  const [cmd, ...args] = argv;
  if (!cmd) return Promise.resolve({ outcome: "failed", exitCode: null, error: "empty command" });
  return new Promise((resolvePromise) => {
    let forwarded = 0;
    let truncated = false;
    const captured: Buffer[] = [];
    let capturedBytes = 0;
    let cancelled = false;
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    let spawnError: Error | undefined;
    void say(ctx, `$ ${argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(" ")}`);
    const child = spawn(cmd, args, {
      cwd: ctx.workspace,
      env: scrubbedEnv(),
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const killGroup = (signal: NodeJS.Signals) => {
      if (!child.pid) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // the group is gone
      }
    };
    const stop = (why: "cancel" | "timeout") => {
      if (why === "cancel") cancelled = true;
      else timedOut = true;
      killGroup("SIGTERM");
      killTimer = setTimeout(() => killGroup("SIGKILL"), ctx.cancelGraceMs);
      killTimer.unref();
    };
    const onAbort = () => stop("cancel");
    if (ctx.signal.aborted) onAbort();
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    const timeout = setTimeout(() => stop("timeout"), ctx.timeoutMs);
    timeout.unref();

    const pump = (stream: NodeJS.ReadableStream & { pause(): void; resume(): void }, name: OutStream) => {
      stream.on("data", (chunk: Buffer) => {
        if (ctx.captureBytes && capturedBytes < ctx.captureBytes) {
          const part = chunk.subarray(0, ctx.captureBytes - capturedBytes);
          captured.push(part);
          capturedBytes += part.length;
        }
        if (truncated) return; // drained, not forwarded
        let part = chunk;
        if (forwarded + chunk.length > ctx.outputCapBytes) {
          part = chunk.subarray(0, Math.max(0, ctx.outputCapBytes - forwarded));
          truncated = true;
        }
        forwarded += part.length;
        stream.pause();
        const marker = truncated
          ? say(ctx, `[output truncated after ${ctx.outputCapBytes} bytes; the rest was discarded]`)
          : Promise.resolve();
        void (part.length > 0 ? ctx.out(name, part) : Promise.resolve())
          .then(() => marker)
          .finally(() => stream.resume());
      });
    };
    if (child.stdout) pump(child.stdout, "stdout");
    if (child.stderr) pump(child.stderr, "stderr");
    child.on("error", (err) => {
      spawnError = err;
    });
    child.on("close", (code, signal) => {
      clearTimeout(timeout);
      if (killTimer) clearTimeout(killTimer);
      ctx.signal.removeEventListener("abort", onAbort);
      // Whatever the leader did, nothing of its group may outlive the step.
      killGroup("SIGKILL");
      const keep = captured.length ? Buffer.concat(captured) : undefined;
      if (spawnError) {
        const notFound = (spawnError as NodeJS.ErrnoException).code === "ENOENT";
        const error = notFound ? `command not found: ${cmd}` : `could not start ${cmd}: ${spawnError.message}`;
        void say(ctx, error).then(() => resolvePromise({ outcome: "failed", exitCode: notFound ? 127 : null, error }));
        return;
      }
      const exitCode = code ?? (signal ? 128 + (signalNumber(signal) ?? 0) : null);
      if (cancelled) return resolvePromise({ outcome: "cancelled", exitCode, error: "cancelled", captured: keep });
      if (timedOut) {
        const error = `timed out after ${Math.round(ctx.timeoutMs / 1000)}s`;
        void say(ctx, error).then(() => resolvePromise({ outcome: "failed", exitCode, error, captured: keep }));
        return;
      }
      if (code === 0) return resolvePromise({ outcome: "succeeded", exitCode: 0, captured: keep });
      resolvePromise({
        outcome: "failed",
        exitCode,
        error: signal ? `${cmd} was killed by ${signal}` : `${cmd} exited with code ${code}`,
        captured: keep,
      });
    });
  });
}

function signalNumber(signal: NodeJS.Signals): number | undefined {
  return { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }[signal as string];
}

const SKIP_DIRS = new Set([".git", "node_modules", ".venv", "target", "dist", ".wrangler"]);

async function listFiles(q: ActionParams<"list_files">, ctx: StepContext): Promise<StepRun> {
  const root = await confine(ctx.workspace, q.path);
  const lines: string[] = [];
  const walk = async (dir: string, depth: number): Promise<void> => {
    if (lines.length >= 5000) return;
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
    for (const e of entries) {
      const rel = relative(ctx.workspace, join(dir, e.name));
      if (e.isDirectory()) {
        lines.push(`${rel}/`);
        if (!SKIP_DIRS.has(e.name) && depth < q.maxDepth) await walk(join(dir, e.name), depth + 1);
      } else lines.push(e.isSymbolicLink() ? `${rel} -> (link)` : rel);
      if (lines.length >= 5000) {
        lines.push("[listing truncated at 5000 entries]");
        return;
      }
    }
  };
  await walk(root, 1);
  await ctx.out("stdout", Buffer.from(`${lines.join("\n")}\n`));
  return { outcome: "succeeded", exitCode: 0 };
}

async function readOne(q: ActionParams<"read_file">, ctx: StepContext): Promise<StepRun> {
  const path = await confine(ctx.workspace, q.path);
  const handle = await open(path, "r");
  try {
    const buf = Buffer.alloc(Math.min(q.maxBytes, ctx.outputCapBytes));
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    await ctx.out("stdout", buf.subarray(0, bytesRead));
    const size = (await handle.stat()).size;
    if (size > bytesRead) await say(ctx, `[file truncated: showed ${bytesRead} of ${size} bytes]`);
  } finally {
    await handle.close();
  }
  return { outcome: "succeeded", exitCode: 0 };
}

async function searchCode(q: ActionParams<"search_code">, ctx: StepContext): Promise<StepRun> {
  const root = await confine(ctx.workspace, q.path ?? ".");
  const needle = q.pattern.toLowerCase();
  let matches = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (matches >= 500) return;
      const full = join(dir, e.name);
      if (e.isDirectory()) {
        if (!SKIP_DIRS.has(e.name)) await walk(full);
        continue;
      }
      if (!e.isFile()) continue;
      const st = await lstat(full);
      if (st.size > 1024 * 1024) continue;
      const text = await readFile(full, "utf8").catch(() => "");
      if (text.includes("\0")) continue;
      const lines = text.split("\n");
      for (let i = 0; i < lines.length && matches < 500; i++) {
        if (lines[i]?.toLowerCase().includes(needle)) {
          matches += 1;
          await ctx.out(
            "stdout",
            Buffer.from(`${relative(ctx.workspace, full)}:${i + 1}: ${lines[i]?.slice(0, 400)}\n`),
          );
        }
      }
    }
  };
  await walk(root);
  await say(
    ctx,
    matches === 0
      ? `no matches for "${q.pattern}"`
      : `${matches} match(es)${matches >= 500 ? " (stopped at 500)" : ""}`,
  );
  return { outcome: "succeeded", exitCode: 0 };
}

async function writeOne(q: ActionParams<"write_file">, ctx: StepContext): Promise<StepRun> {
  const path = await confineForWrite(ctx.workspace, q.path);
  try {
    await writeFile(path, q.content, { flag: q.overwrite ? "w" : "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      const error = `${q.path} already exists; ask to overwrite it explicitly`;
      await say(ctx, error);
      return { outcome: "failed", exitCode: 1, error };
    }
    throw err;
  }
  await say(ctx, `wrote ${Buffer.byteLength(q.content)} bytes to ${q.path}`);
  return { outcome: "succeeded", exitCode: 0 };
}
