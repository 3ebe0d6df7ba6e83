// Sign-in attempt limits for the console: per client address and per prefix of what was submitted
// (a guesser spread over many addresses still hits the prefix limit for one token). Checked before
// the token is compared, so an over-limit attempt learns nothing, the right token included. Counted
// in RateLimitDO (in memory, sliding window); the audit log gets one row per key per window, not one
// per refused request, so a flood cannot grow the log.
import type { Context } from "hono";
import { html } from "hono/html";
import { appendAudit, getDb } from "../ledger/store.ts";
import { sha256Hex } from "../lib/crypto.ts";
import { page } from "./layout.ts";

export const SIGN_IN_WINDOW_MS = 15 * 60_000;
export const SIGN_IN_PER_ADDRESS = 20;
export const SIGN_IN_PER_PREFIX = 10;
const PREFIX_CHARS = 8;

/** Cloudflare sets CF-Connecting-IP itself (a client cannot); local dev without it shares one bucket. */
export const clientAddress = (c: Context) => c.req.header("CF-Connecting-IP") ?? "unknown";

const take = (env: Env, key: string, limit: number) =>
  env.RATE_LIMIT.get(env.RATE_LIMIT.idFromName(key)).take(limit, SIGN_IN_WINDOW_MS);

/**
 * Counts one attempt of `kind` (token or link) against both limits; null when allowed, else the
 * limit that refused it. The submitted text's prefix is hashed before it names anything.
 */
export async function takeSignInAttempt<E extends { Bindings: Env }>(
  c: Context<E>,
  kind: "token" | "link",
  submitted: string,
): Promise<"address" | "prefix" | null> {
  const address = clientAddress(c);
  if (!(await take(c.env, `web-sign-in:${kind}:addr:${address}`, SIGN_IN_PER_ADDRESS))) return "address";
  if (submitted) {
    const prefix = await sha256Hex(`${kind}:${submitted.slice(0, PREFIX_CHARS)}`);
    if (!(await take(c.env, `web-sign-in:${kind}:prefix:${prefix}`, SIGN_IN_PER_PREFIX))) return "prefix";
  }
  return null;
}

/** The 429 page, with Retry-After, and (once per address and limit per window) an audit row. */
export async function signInLimitedPage<E extends { Bindings: Env }>(
  c: Context<E>,
  kind: "token" | "link",
  limit: "address" | "prefix",
) {
  const address = clientAddress(c);
  if (await take(c.env, `web-sign-in-audit:${kind}:${limit}:${address}`, 1)) {
    await appendAudit(getDb(c.env.DB), {
      actor: `web:${address}`,
      action: "web_sign_in_limited",
      detail: { kind, limit, windowMinutes: SIGN_IN_WINDOW_MS / 60_000 },
      at: Date.now(),
    });
  }
  const why =
    limit === "address"
      ? `Too many sign-in attempts from your address (at most ${SIGN_IN_PER_ADDRESS} in ${SIGN_IN_WINDOW_MS / 60_000} minutes).`
      : `Too many sign-in attempts with this ${kind === "token" ? "token" : "link"} (at most ${SIGN_IN_PER_PREFIX} in ${SIGN_IN_WINDOW_MS / 60_000} minutes).`;
  c.header("Retry-After", String(SIGN_IN_WINDOW_MS / 1000));
  return c.html(
    page({
      title: "Too many attempts",
      session: null,
      body: html`<h1>Too many sign-in attempts</h1><p class="err" id="limited">${why} Try again in ${SIGN_IN_WINDOW_MS / 60_000} minutes; nothing was checked this time.</p>`,
    }),
    429,
  );
}
