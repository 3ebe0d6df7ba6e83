// Browser sessions for the web console. The cookie carries a random session id plus an HMAC of it
// (key derived from API_TOKEN, so rotating the token ends every session); D1 keeps only the id's
// SHA-256, so sign-out (revoked_at) really ends a session even if the cookie is kept. The CSRF token
// is a second HMAC of the same id: bound to the session, useless with any other one.
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { type Config, loadConfig } from "../config.ts";
import type { Actor } from "../jobs/job-do.ts";
import { randomHex, sha256Hex, timingSafeEqual, toHex } from "../lib/crypto.ts";

export const SESSION_TTL_MS = 12 * 3600_000;
export const LINK_TTL_MS = 10 * 60_000;
/** The user id of whoever signs in with the API token: the deployment's owner, who sees everything. */
export const OWNER_ID = "api";

/** The console routes' Hono environment: the bindings and the signed-in session. */
export type WebEnv = { Bindings: Env; Variables: { session: WebSession } };

export interface WebSession {
  actor: Actor;
  csrf: string;
  idHash: string;
}

async function hmacHex(secret: string, label: string, data: string): Promise<string> {
  const enc = new TextEncoder();
  const base = await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  // A key per purpose, derived from the API token: a session MAC is never a valid CSRF token.
  const derived = await crypto.subtle.sign("HMAC", base, enc.encode(`skynet-web:${label}`));
  const key = await crypto.subtle.importKey("raw", derived, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return toHex(await crypto.subtle.sign("HMAC", key, enc.encode(data)));
}

/** Plain http is allowed only on the loopback (local dev); everywhere else the cookie is Secure. */
export function isLocalHttp(url: string): boolean {
  const u = new URL(url);
  return u.protocol === "http:" && ["127.0.0.1", "localhost", "[::1]"].includes(u.hostname);
}

const cookieName = (url: string) => (isLocalHttp(url) ? "skynet_web" : "__Host-skynet_web");

/** The actor a stored user id stands for now: admin rights and access are read from today's config. */
export function actorFor(config: Config, userId: string): Actor | null {
  if (userId === OWNER_ID) return { id: OWNER_ID, isAdmin: true };
  if (!config.telegramAllowedUserIds.includes(userId)) return null;
  return { id: userId, isAdmin: config.telegramAdminUserIds.includes(userId) };
}

export async function startSession<E extends { Bindings: Env }>(c: Context<E>, userId: string): Promise<void> {
  const secret = loadConfig(c.env).apiToken;
  const sid = randomHex(32);
  const now = Date.now();
  // Expired sessions are dropped as new ones start (on the expiry index), so the table stays small.
  await c.env.DB.batch([
    c.env.DB.prepare("DELETE FROM web_sessions WHERE expires_at < ?").bind(now),
    c.env.DB.prepare("INSERT INTO web_sessions (id_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)").bind(
      await sha256Hex(sid),
      userId,
      now,
      now + SESSION_TTL_MS,
    ),
  ]);
  setCookie(c, cookieName(c.req.url), `${sid}.${await hmacHex(secret, "session", sid)}`, {
    path: "/",
    httpOnly: true,
    secure: !isLocalHttp(c.req.url),
    sameSite: "Strict",
    maxAge: SESSION_TTL_MS / 1000,
  });
}

/** The session this request's cookie proves, or null (no cookie, bad MAC, expired, revoked, user gone). */
export async function readSession<E extends { Bindings: Env }>(c: Context<E>): Promise<WebSession | null> {
  const config = loadConfig(c.env);
  if (!config.apiToken) return null;
  const raw = getCookie(c, cookieName(c.req.url));
  const m = /^([0-9a-f]{64})\.([0-9a-f]{64})$/.exec(raw ?? "");
  if (!m?.[1] || !m[2]) return null;
  const sid = m[1];
  if (!timingSafeEqual(m[2], await hmacHex(config.apiToken, "session", sid))) return null;
  const idHash = await sha256Hex(sid);
  const row = await c.env.DB.prepare(
    "SELECT user_id FROM web_sessions WHERE id_hash = ? AND revoked_at IS NULL AND expires_at > ?",
  )
    .bind(idHash, Date.now())
    .first<{ user_id: string }>();
  if (!row) return null;
  const actor = actorFor(config, row.user_id);
  if (!actor) return null;
  return { actor, idHash, csrf: await hmacHex(config.apiToken, "csrf", sid) };
}

export async function endSession<E extends { Bindings: Env }>(c: Context<E>, session: WebSession): Promise<void> {
  await c.env.DB.prepare("UPDATE web_sessions SET revoked_at = ? WHERE id_hash = ?")
    .bind(Date.now(), session.idHash)
    .run();
  deleteCookie(c, cookieName(c.req.url), { path: "/", secure: !isLocalHttp(c.req.url) });
}

/** A one-time login link code for a Telegram user (only its hash is stored). */
export async function issueLoginLink(env: Env, userId: string): Promise<{ code: string; expiresAt: number }> {
  const code = randomHex(32);
  const now = Date.now();
  // Old links are dead weight; dropping the expired ones here keeps the table small without a cron.
  await env.DB.batch([
    env.DB.prepare("DELETE FROM web_login_links WHERE expires_at < ?").bind(now),
    env.DB.prepare("INSERT INTO web_login_links (code_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)").bind(
      await sha256Hex(code),
      userId,
      now,
      now + LINK_TTL_MS,
    ),
  ]);
  return { code, expiresAt: now + LINK_TTL_MS };
}

/** Uses a login link code once (atomically); returns its user id, or null if unknown, used or expired. */
export async function redeemLoginLink(env: Env, code: string): Promise<string | null> {
  if (!/^[0-9a-f]{64}$/.test(code)) return null;
  const row = await env.DB.prepare(
    "UPDATE web_login_links SET used_at = ? WHERE code_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING user_id",
  )
    .bind(Date.now(), await sha256Hex(code), Date.now())
    .first<{ user_id: string }>();
  return row?.user_id ?? null;
}

/** Whether a submitted CSRF token is this session's. */
export function csrfMatches(session: WebSession, submitted: unknown): boolean {
  return typeof submitted === "string" && timingSafeEqual(submitted, session.csrf);
}
