// Cloudflare Access assertions checked against a locally generated RSA key served by a local
// certs server (the same JSON shape as https://<team>.cloudflareaccess.com/cdn-cgi/access/certs).
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type AccessConfig, accessConfig, forgetAccessCerts, verifyAccessJwt } from "../../src/web/cf-access-jwt.ts";

const ALG = {
  name: "RSASSA-PKCS1-v1_5",
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: "SHA-256",
};
let server: Server;
let team = "";
let certRequests = 0;
let published: JsonWebKey[] = [];
let good: CryptoKeyPair;
let rogue: CryptoKeyPair;

const b64url = (b: Uint8Array | string) =>
  Buffer.from(typeof b === "string" ? new TextEncoder().encode(b) : b).toString("base64url");

async function jwt(key: CryptoKey, claims: Record<string, unknown>, header: Record<string, unknown> = {}) {
  const h = b64url(JSON.stringify({ alg: "RS256", kid: "k1", typ: "JWT", ...header }));
  const p = b64url(JSON.stringify(claims));
  const sig = new Uint8Array(await crypto.subtle.sign("RSASSA-PKCS1-v1_5", key, new TextEncoder().encode(`${h}.${p}`)));
  return `${h}.${p}.${b64url(sig)}`;
}

const now = () => Math.floor(Date.now() / 1000);
const claims = (over: Record<string, unknown> = {}) => ({
  aud: ["aud-skynet"],
  iss: team,
  exp: now() + 600,
  iat: now(),
  email: "Ada@Example.com",
  ...over,
});
const cfg = (): AccessConfig => ({
  teamDomain: team,
  aud: "aud-skynet",
  users: new Map([
    ["ada@example.com", "46"],
    ["owner@example.com", "api"],
  ]),
});

beforeAll(async () => {
  good = (await crypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  rogue = (await crypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const pub = await crypto.subtle.exportKey("jwk", good.publicKey);
  published = [{ ...pub, kid: "k1", alg: "RS256", use: "sig" } as JsonWebKey];
  server = createServer((req, res) => {
    if (req.url !== "/cdn-cgi/access/certs") {
      res.writeHead(404).end();
      return;
    }
    certRequests += 1;
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ keys: published, public_cert: { kid: "k1", cert: "-----BEGIN CERTIFICATE-----" } }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  team = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));
beforeEach(() => {
  forgetAccessCerts();
  certRequests = 0;
});

describe("Cloudflare Access assertions", () => {
  it("accepts a token signed by the team's key for our AUD and maps its email to the user", async () => {
    const res = await verifyAccessJwt(await jwt(good.privateKey, claims()), cfg());
    expect(res).toEqual({ ok: true, value: { userId: "46", email: "ada@example.com" } });
    // The certs are fetched once and reused.
    await verifyAccessJwt(await jwt(good.privateKey, claims({ email: "owner@example.com" })), cfg());
    expect(certRequests).toBe(1);
  });

  it.each([
    ["another application's AUD", { aud: "aud-other" }, "for another application (aud)"],
    ["another team's issuer", { iss: "https://evil.cloudflareaccess.com" }, "from another team (iss)"],
    ["an expired token", { exp: now() - 3600 }, "expired"],
    ["a token not valid yet", { nbf: now() + 3600 }, "not valid yet"],
    ["an email that is no SKYNET user", { email: "mallory@example.com" }, "mallory@example.com is not a SKYNET user"],
  ])("refuses %s", async (_name, over, reason) => {
    const res = await verifyAccessJwt(await jwt(good.privateKey, claims(over)), cfg());
    expect(res.ok).toBe(false);
    expect(!res.ok && res.error).toContain(reason);
  });

  it("refuses a forged signature, a changed payload, alg none/HS256 and a key the team does not publish", async () => {
    const forged = await verifyAccessJwt(await jwt(rogue.privateKey, claims()), cfg());
    expect(forged).toEqual({ ok: false, error: "bad signature" });
    const [h, , s] = (await jwt(good.privateKey, claims())).split(".");
    const swapped = `${h}.${b64url(JSON.stringify(claims({ email: "owner@example.com" })))}.${s}`;
    expect(await verifyAccessJwt(swapped, cfg())).toEqual({ ok: false, error: "bad signature" });
    const none = `${b64url(JSON.stringify({ alg: "none", kid: "k1" }))}.${b64url(JSON.stringify(claims()))}.`;
    expect((await verifyAccessJwt(none, cfg())).ok).toBe(false);
    const hs = await jwt(good.privateKey, claims(), { alg: "HS256" });
    expect(await verifyAccessJwt(hs, cfg())).toEqual({ ok: false, error: "not an RS256 token with a key id" });
    const unknownKid = await verifyAccessJwt(await jwt(rogue.privateKey, claims(), { kid: "k9" }), cfg());
    expect(unknownKid).toEqual({ ok: false, error: "signed by a key the team does not publish" });
    expect(await verifyAccessJwt("not-a-jwt", cfg())).toEqual({ ok: false, error: "not a JWT" });
  });

  it("is on only when all three settings are there, over https (or a loopback server)", () => {
    const env = (v: Record<string, string>) => v;
    const full = {
      CF_ACCESS_TEAM_DOMAIN: "https://t.cloudflareaccess.com/",
      CF_ACCESS_AUD: "a",
      CF_ACCESS_USERS: "x@y.z=api, bad, q@r.s=46",
    };
    expect(accessConfig(env(full))).toEqual({
      teamDomain: "https://t.cloudflareaccess.com",
      aud: "a",
      users: new Map([
        ["x@y.z", "api"],
        ["q@r.s", "46"],
      ]),
    });
    expect(accessConfig(env({ ...full, CF_ACCESS_AUD: "" }))).toBeNull();
    expect(accessConfig(env({ ...full, CF_ACCESS_TEAM_DOMAIN: "http://t.cloudflareaccess.com" }))).toBeNull();
    expect(accessConfig(env({ ...full, CF_ACCESS_USERS: "nobody" }))).toBeNull();
  });
});
