// Cloudflare Access sign-in for the console (see cf-access-jwt.ts for what is checked).
import type { Context } from "hono";
import { err } from "../../protocol/index.ts";
import { appendAudit, getDb } from "../ledger/store.ts";
import { errorMessage, log } from "../lib/log.ts";
import { type AccessVars, accessConfig, verifyAccessJwt } from "./cf-access-jwt.ts";

/**
 * Signs the request in through Cloudflare Access when it is configured and the request carries a
 * valid assertion (GET only: a cross-site POST also carries Access's cookie, so a form is never
 * acted on without our own session and CSRF token). True when a session was started.
 */
export async function accessSignIn<E extends { Bindings: Env }>(
  c: Context<E>,
  start: (userId: string) => Promise<void>,
  allowed: (userId: string) => boolean,
): Promise<boolean> {
  const cfg = accessConfig(c.env as Env & AccessVars);
  const assertion = c.req.header("Cf-Access-Jwt-Assertion");
  if (!cfg || !assertion || c.req.method !== "GET") return false;
  const res = await verifyAccessJwt(assertion, cfg).catch((e: unknown) => err(errorMessage(e)));
  if (!res.ok || !allowed(res.value.userId)) {
    log("warn", "web: a Cloudflare Access assertion was refused", { reason: res.ok ? "user not allowed" : res.error });
    return false;
  }
  await start(res.value.userId);
  await appendAudit(getDb(c.env.DB), {
    actor: `web:${res.value.userId}`,
    action: "web_sign_in_access",
    detail: { email: res.value.email },
    at: Date.now(),
  });
  return true;
}
