// Runs one command for a step: contained (contain.ts: a PID namespace, or a process group) with
// the agent-death watchdog on stdin, output streamed with backpressure and capped, a timeout,
// and cancel as SIGTERM to the whole tree, then SIGKILL after the grace period.
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { containedArgv, containment, resolveCommand } from "./contain.ts";
import { scrubbedEnv } from "./sandbox.ts";
import type { OutStream, StepContext, StepRun } from "./step.ts";

const say = (ctx: StepContext, text: string) => ctx.out("system", Buffer.from(`${text}\n`));

/** Spawns argv contained (contain.ts) and streams its output through ctx.out. */
export async function runProcess(
  argv: string[],
  ctx: StepContext,
  opts: { env?: NodeJS.ProcessEnv; shown?: string[] } = {},
): Promise<StepRun> {
  const [cmd] = argv;
  if (!cmd) return { outcome: "failed", exitCode: null, error: "empty command" };
  const shown = opts.shown ?? argv;
  const env = opts.env ?? scrubbedEnv();
  const contain = await containment();
  const [launcher, ...launchArgs] = containedArgv(contain, argv) as [string, ...string[]];
  return new Promise((resolvePromise) => {
    let forwarded = 0;
    let truncated = false;
    const captured: Buffer[] = [];
    let capturedBytes = 0;
    let cancelled = false;
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    let spawnError: Error | undefined;
    void say(ctx, `$ ${shown.map(quoteArg).join(" ")}`);
    // stdin is the watchdog's pipe: the agent never writes to it, and when the agent dies the
    // kernel closes it and the step is killed (contain.ts).
    const child = spawn(launcher, launchArgs, {
      cwd: ctx.workspace,
      env,
      detached: true,
      stdio: ["pipe", "pipe", "pipe"],
    });
    child.stdin?.on("error", () => undefined);
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
      // The step's init shell answers 127 for a command it cannot find; look only then (it is
      // a PATH walk, not worth paying on every spawn).
      if (code === 127 && !cancelled && !timedOut) {
        void resolveCommand(cmd, ctx.workspace, env.PATH).then(async (found) => {
          const error = found ? `${cmd} exited with code 127` : `command not found: ${cmd}`;
          if (!found) await say(ctx, error);
          resolvePromise({ outcome: "failed", exitCode: 127, error, captured: keep });
        });
        return;
      }
      if (cancelled) return resolvePromise({ outcome: "cancelled", exitCode, error: "cancelled", captured: keep });
      if (timedOut) {
        const error = `timed out after ${Math.round(ctx.timeoutMs / 1000)}s`;
        void say(ctx, error).then(() => resolvePromise({ outcome: "failed", exitCode, error, captured: keep }));
        return;
      }
      if (code === 0) return resolvePromise({ outcome: "succeeded", exitCode: 0, captured: keep });
      // The contained command's init reports a signal death as 128+n, as a shell does.
      const bySignal = signal ?? (code !== null && code > 128 ? signalName(code - 128) : undefined);
      resolvePromise({
        outcome: "failed",
        exitCode,
        error: bySignal ? `${cmd} was killed by ${bySignal}` : `${cmd} exited with code ${code}`,
        captured: keep,
      });
    });
  });
}

function signalNumber(signal: NodeJS.Signals): number | undefined {
  return constants.signals[signal];
}

function signalName(n: number): string | undefined {
  return Object.entries(constants.signals).find(([, v]) => v === n)?.[0];
}

const quoteArg = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a));
