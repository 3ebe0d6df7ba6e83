// Usage errors and exit codes shared by the CLI's commands (cli.ts, doctor.ts, service.ts).

/** Exit codes, named in --help so a service manager's restart policy can tell them apart. */
export const EXIT = { ok: 0, error: 1, usage: 2, tokenRefused: 3, replaced: 4, upgrade: 5 } as const;

/** A mistake in the command line: printed without a stack, exit code 2. */
export class UsageError extends Error {}

export function fail(message: string, usage?: string): never {
  throw new UsageError(usage ? `${message}\n\n${usage}` : message);
}
