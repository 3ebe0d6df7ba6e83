// Usage errors and exit codes shared by the CLI's commands (cli.ts, doctor.ts, service.ts), and
// how a command's failure is reported: a usage error is the caller's to fix, a bug is ours.

/** Exit codes, named in --help so a service manager's restart policy can tell them apart. */
export const EXIT = { ok: 0, error: 1, usage: 2, tokenRefused: 3, replaced: 4, upgrade: 5, bug: 70 } as const;

/** A mistake in the command line: printed without a stack, exit code 2. */
export class UsageError extends Error {}

export function fail(message: string, usage?: string): never {
  throw new UsageError(usage ? `${message}\n\n${usage}` : message);
}

/** node:util parseArgs reports an unknown flag or a missing value as a TypeError with this code. */
export function isParseArgsError(err: unknown): err is TypeError {
  return err instanceof TypeError && "code" in err && String(err.code).startsWith("ERR_PARSE_ARGS");
}

/** A failure the operating system reports (ENOENT, EACCES, ECONNREFUSED, …): not a bug. */
function isSystemError(err: unknown): err is Error {
  return err instanceof Error && "code" in err && typeof err.code === "string" && /^E[A-Z]+$/.test(err.code);
}

/**
 * Reports a command's failure on stderr and returns the exit code: a usage error (our UsageError
 * or parseArgs' refusal) exits 2 with its message, an expected failure (`expected`, or one the
 * system reports) exits 1 with its message, anything else is a bug: 70, with its stack.
 */
export function reportFailure(
  program: string,
  err: unknown,
  opts: { expected?: (err: unknown) => boolean; write?: (line: string) => void } = {},
): number {
  const write = opts.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (err instanceof UsageError || isParseArgsError(err)) {
    write(`${program}: ${err.message}${err instanceof UsageError ? "" : "; see --help"}`);
    return EXIT.usage;
  }
  if (opts.expected?.(err) || isSystemError(err)) {
    write(`${program}: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT.error;
  }
  write(err instanceof Error && err.stack ? err.stack : String(err));
  write(`${program}: this is a bug (exit ${EXIT.bug}), please report it with the lines above`);
  return EXIT.bug;
}
