// Optional Cloudflare Access sign-in for the console: the assertion's checks, free of Worker
// bindings so they are tested in Node against a local certs server (cf-access.ts signs in with
// them). When CF_ACCESS_TEAM_DOMAIN, CF_ACCESS_AUD and CF_ACCESS_USERS are set, a request carrying the Cf-Access-Jwt-Assertion header is signed in as
// the user its email maps to — after the JWT's RS256 signature is checked against the team's
// published certs and its audience, issuer and times are checked. The plain email header
// (Cf-Access-Authenticated-User-Email) is never trusted: anyone can send it to a Worker that is
// also reachable without Access.
import { z } from "zod";
import { err, ok, type Result } from "../../protocol/index.ts";

export interface AccessConfig {
  /** https://<team>.cloudflareaccess.com (the JWT's issuer; the certs are at /cdn-cgi/access/certs). */
  teamDomain: string;
  aud: string;
  /** lowercased email → SKYNET user id ("api" for the owner, or an allowed Telegram user id). */
  users: Map<string, string>;
}

export type AccessVars = Partial<Record<"CF_ACCESS_TEAM_DOMAIN" | "CF_ACCESS_AUD" | "CF_ACCESS_USERS", string>>;

const LOOPBACK = /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/;

/** The Access settings, or null when Access sign-in is off (any of the three missing or malformed). */
export function accessConfig(v: AccessVars): AccessConfig | null {
  const team = (v.CF_ACCESS_TEAM_DOMAIN ?? "").trim().replace(/\/+$/, "");
  const aud = (v.CF_ACCESS_AUD ?? "").trim();
  if (!team || !aud || !v.CF_ACCESS_USERS) return null;
  // https only, except a loopback certs server in tests and local development.
  if (!/^https:\/\/[a-z0-9.-]+$/i.test(team) && !LOOPBACK.test(team)) return null;
  const users = new Map<string, string>();
  for (const pair of v.CF_ACCESS_USERS.split(",")) {
    const m = /^\s*([^\s=]+@[^\s=]+)\s*=\s*(api|\d{1,20})\s*$/.exec(pair);
    if (m?.[1] && m[2]) users.set(m[1].toLowerCase(), m[2]);
  }
  return users.size ? { teamDomain: team, aud, users } : null;
}

const JwkSchema = z.object({ kid: z.string(), kty: z.literal("RSA"), n: z.string(), e: z.string() }).passthrough();
const CertsSchema = z.object({ keys: z.array(z.unknown()).max(50) });
const HeaderSchema = z.object({ alg: z.literal("RS256"), kid: z.string().max(200) });
const ClaimsSchema = z.object({
  aud: z.union([z.string(), z.array(z.string())]),
  iss: z.string(),
  exp: z.number(),
  nbf: z.number().optional(),
  iat: z.number().optional(),
  email: z.string().max(320),
});

const CERTS_TTL_MS = 10 * 60_000;
/** A token naming an unknown key refetches the certs (keys rotate), but at most this often. */
const REFETCH_MIN_MS = 60_000;
const LEEWAY_S = 60;
let certsCache: { team: string; keys: Map<string, JsonWebKey>; at: number } | null = null;

async function certs(team: string, fetcher: typeof fetch, force: boolean): Promise<Map<string, JsonWebKey>> {
  const now = Date.now();
  const c = certsCache;
  if (c && c.team === team && now - c.at < (force ? REFETCH_MIN_MS : CERTS_TTL_MS)) return c.keys;
  const res = await fetcher(`${team}/cdn-cgi/access/certs`, { redirect: "manual" });
  // A redirect is refused like an error: the certs come from the team domain itself.
  if (res.status !== 200) throw new Error(`the Access certs answered ${res.status}`);
  const body = CertsSchema.parse(await res.json());
  const keys = new Map<string, JsonWebKey>();
  for (const k of body.keys) {
    const jwk = JwkSchema.safeParse(k);
    if (jwk.success) keys.set(jwk.data.kid, { kty: "RSA", n: jwk.data.n, e: jwk.data.e, alg: "RS256", ext: true });
  }
  certsCache = { team, keys, at: now };
  return keys;
}

/** For tests: forget the cached certs. */
export function forgetAccessCerts(): void {
  certsCache = null;
}

function b64urlBytes(s: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new Error("not base64url");
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(bin, (ch) => ch.charCodeAt(0));
}
const b64urlJson = (s: string): unknown => JSON.parse(new TextDecoder().decode(b64urlBytes(s)));

/**
 * The SKYNET user id an Access JWT proves, or why not. Every check must pass: RS256 only, a key
 * from the team's certs, a valid signature, our application's AUD, the team's issuer, not expired
 * or not yet valid, and an email that CF_ACCESS_USERS maps to a user.
 */
export async function verifyAccessJwt(
  token: string,
  cfg: AccessConfig,
  fetcher: typeof fetch = fetch,
  now = Date.now(),
): Promise<Result<{ userId: string; email: string }>> {
  if (token.length > 8192) return err("token too long");
  const parts = token.split(".");
  if (parts.length !== 3) return err("not a JWT");
  const [h = "", p = "", sig = ""] = parts;
  let header: z.infer<typeof HeaderSchema>;
  let claims: z.infer<typeof ClaimsSchema>;
  let signature: Uint8Array<ArrayBuffer>;
  try {
    const hp = HeaderSchema.safeParse(b64urlJson(h));
    if (!hp.success) return err("not an RS256 token with a key id");
    header = hp.data;
    const cp = ClaimsSchema.safeParse(b64urlJson(p));
    if (!cp.success) return err("claims missing or malformed");
    claims = cp.data;
    signature = b64urlBytes(sig);
  } catch {
    return err("not a JWT");
  }
  let keys = await certs(cfg.teamDomain, fetcher, false);
  if (!keys.has(header.kid)) keys = await certs(cfg.teamDomain, fetcher, true);
  const jwk = keys.get(header.kid);
  if (!jwk) return err("signed by a key the team does not publish");
  const key = await crypto.subtle.importKey("jwk", jwk, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, [
    "verify",
  ]);
  const signed = new TextEncoder().encode(`${h}.${p}`);
  if (!(await crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, signature, signed))) return err("bad signature");
  const auds = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!auds.includes(cfg.aud)) return err("for another application (aud)");
  if (claims.iss !== cfg.teamDomain) return err("from another team (iss)");
  const t = now / 1000;
  if (claims.exp < t - LEEWAY_S) return err("expired");
  if ((claims.nbf ?? claims.iat ?? 0) > t + LEEWAY_S) return err("not valid yet");
  const email = claims.email.toLowerCase();
  const userId = cfg.users.get(email);
  if (!userId) return err(`${email} is not a SKYNET user (CF_ACCESS_USERS)`);
  return ok({ userId, email });
}
