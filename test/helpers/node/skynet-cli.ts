// Runs the operator CLI (`scripts/skynet.ts`, what `npx skynet` runs) as a child process with an
// environment of the test's choosing: no inherited SKYNET_* variables, a config path that does
// not exist unless given, and a working directory without .dev.vars unless given.
import { spawn } from "node:child_process";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../../..");
export const SKYNET_CLI = join(ROOT, "scripts/skynet.ts");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(
  args: string[],
  opts: { env?: Record<string, string>; cwd: string; timeoutMs?: number },
): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith("SKYNET_")) delete env[k];
  env.SKYNET_CONFIG = join(opts.cwd, "no-such-cli.json");
  Object.assign(env, opts.env);
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [SKYNET_CLI, ...args], { cwd: opts.cwd, env, stdio: "pipe" });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 90_000);
    child.on("error", fail);
    child.on("close", (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}
