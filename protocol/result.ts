/**
 * The one shape of a fallible operation's outcome, used by the Worker, the agent and the CLIs:
 * `{ ok: true, value }` or `{ ok: false, error }`. A bug is thrown, never returned as a Result.
 */
export type Result<T, E = string> = { ok: true; value: T } | { ok: false; error: E };

export const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });
export const err = <E>(error: E): { ok: false; error: E } => ({ ok: false, error });
