// Exit codes the operator CLI promises (documented in `skynet --help`): a usage error (2) is the
// caller's to fix; a server or network error (1) is the server's; anything else is a bug (70).
export const EXIT = { ok: 0, failed: 1, usage: 2, bug: 70 } as const;

/** The command line or the configuration is wrong: exit 2. */
export class UsageError extends Error {}

/** The server refused, failed or could not be reached: exit 1. */
export class ServerError extends Error {
  /** The HTTP status when the server answered (none when it could not be reached). */
  readonly status: number | undefined;
  constructor(message: string, status?: number) {
    super(message);
    this.status = status;
  }
}
