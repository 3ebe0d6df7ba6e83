// Cloudflare Access sign-in through the Worker's routes (workerd, real D1): a verified assertion
// starts a console session for the mapped user and is audited; the plain email header, a forged
// assertion and a POST carrying an assertion sign nobody in. The certs come from a local server
// (the Bot API stand-in serves /cdn-cgi/access/certs with the key this test generates).
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { app } from "../src/app.ts";
import { forgetAccessCerts } from "../src/web/cf-access-jwt.ts";
import { cookieOf } from "./helpers/web.ts";
import { BASE } from "./helpers/worker.ts";

const ALG = {
  name: "RSASSA-PKCS1-v1_5",
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: "SHA-256",
};
const team = env.TELEGRAM_API_ROOT;
const accessEnv = {
  ...env,
  CF_ACCESS_TEAM_DOMAIN: team,
  CF_ACCESS_AUD: "aud-console",
  CF_ACCESS_USERS: "ada@example.com=46, boss@example.com=api",
};
let key: CryptoKeyPair;
let rogue: CryptoKeyPair;

const b64url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
const text64 = (s: string) => b64url(new TextEncoder().encode(s));
async function assertion(signer: CryptoKey, email: string, aud = "aud-console") {
  const now = Math.floor(Date.now() / 1000);
  const h = text64(JSON.stringify({ alg: "RS256", kid: "console-k1" }));
  const p = text64(JSON.stringify({ aud: [aud], iss: team, exp: now + 300, iat: now, email }));
  const sig = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", signer, new TextEncoder().encode(`${h}.${p}`));
  return `${h}.${p}.${b64url(new Uint8Array(sig))}`;
}

async function get(path: string, headers: Record<string, string>, method = "GET") {
  const ctx = createExecutionContext();
  const res = await app.fetch(
    new Request(`${BASE}${path}`, { method, headers: { Origin: BASE, ...headers }, redirect: "manual" }),
    accessEnv,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return res;
}

beforeAll(async () => {
  key = (await crypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  rogue = (await crypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const jwk = (await crypto.subtle.exportKey("jwk", key.publicKey)) as JsonWebKey;
  await fetch(`${team}/__access_certs`, {
    method: "POST",
    body: JSON.stringify({ keys: [{ ...jwk, kid: "console-k1", alg: "RS256" }] }),
  });
});
beforeEach(() => forgetAccessCerts());

describe("web console behind Cloudflare Access", () => {
  it("signs in the user a verified assertion names, comes back to the page asked for, and audits it", async () => {
    const res = await get("/web/jobs.json?status=QUEUED", {
      "Cf-Access-Jwt-Assertion": await assertion(key.privateKey, "Ada@example.com"),
    });
    expect(res.status).toBe(303);
    expect(res.headers.get("Location")).toBe("/web/jobs.json?status=QUEUED");
    const cookie = cookieOf(res);
    expect(cookie).toMatch(/^__Host-skynet_web=[0-9a-f]{64}\./);
    // The cookie alone is the session now (no assertion needed), and it is Telegram user 46's.
    const page = await get("/web", { Cookie: cookie });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("telegram 46");
    const audit = await env.DB.prepare(
      "SELECT detail FROM audit_log WHERE action = 'web_sign_in_access' AND actor = 'web:46'",
    ).all<{ detail: string }>();
    expect(audit.results.map((r) => JSON.parse(r.detail))).toEqual([{ email: "ada@example.com" }]);
  });

  it("trusts no email header, no forged or foreign assertion, and no assertion on a POST", async () => {
    const refused = [
      await get("/web", { "Cf-Access-Authenticated-User-Email": "boss@example.com" }),
      await get("/web", { "Cf-Access-Jwt-Assertion": await assertion(rogue.privateKey, "boss@example.com") }),
      await get("/web", {
        "Cf-Access-Jwt-Assertion": await assertion(key.privateKey, "boss@example.com", "aud-other"),
      }),
      await get("/web", { "Cf-Access-Jwt-Assertion": await assertion(key.privateKey, "mallory@example.com") }),
    ];
    for (const res of refused) {
      expect(res.headers.get("Location")).toBe("/web/login");
      expect(res.headers.get("Set-Cookie")).toBeNull();
    }
    const post = await get(
      "/web/logout",
      { "Cf-Access-Jwt-Assertion": await assertion(key.privateKey, "boss@example.com") },
      "POST",
    );
    expect(post.status).toBe(401);
    expect(post.headers.get("Set-Cookie")).toBeNull();
    const sessions = await env.DB.prepare("SELECT COUNT(*) AS n FROM web_sessions WHERE user_id = 'api'").first<{
      n: number;
    }>();
    expect(sessions?.n).toBe(0);
  });
});
