// Exit codes the operator CLI promises (documented in `skynet --help`): a usage error (2) is the
// caller's to fix; a server or network error (1) is the server's; anything else is a bug (70).
export const EXIT = { ok: 0, failed: 1, usage: 2, bug: 70 } as const;

/** The command line or the configuration is wrong: exit 2. */
export class UsageError extends Error {}

/** The server refused, failed or could not be reached: exit 1. */
export class ServerError extends Error {}
