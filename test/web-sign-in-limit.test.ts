// Sign-in attempt limits in workerd (real RateLimitDO, real D1): per client address and per prefix
// of the submitted token, a 429 page that checks nothing (the right token is refused too), one
// audit row per window rather than one per refused request.
import { env } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { issueLoginLink } from "../src/web/session.ts";
import { SIGN_IN_PER_ADDRESS, SIGN_IN_PER_PREFIX } from "../src/web/sign-in-limit.ts";
import { API_TOKEN, BASE } from "./helpers/worker.ts";

function post(path: string, form: Record<string, string>, address: string) {
  return exports.default.fetch(
    new Request(`${BASE}${path}`, {
      method: "POST",
      headers: {
        Origin: BASE,
        "Content-Type": "application/x-www-form-urlencoded",
        "CF-Connecting-IP": address,
      },
      body: new URLSearchParams(form).toString(),
      redirect: "manual",
    }),
  );
}

const auditRows = async (actor: string) =>
  (
    await env.DB.prepare("SELECT action, detail FROM audit_log WHERE actor = ?")
      .bind(actor)
      .all<{ action: string; detail: string }>()
  ).results;

describe("web sign-in limits", () => {
  it("refuses an address after its attempts run out, the right token included, and audits it once", async () => {
    const addr = "198.51.100.7";
    for (let i = 0; i < SIGN_IN_PER_ADDRESS; i++) {
      // A different wrong token each time, so only the address limit can bite.
      const res = await post("/web/login", { token: `wrong${i}-${crypto.randomUUID()}` }, addr);
      expect(res.status).toBe(401);
    }
    const refused = await post("/web/login", { token: API_TOKEN }, addr);
    expect(refused.status).toBe(429);
    expect(refused.headers.get("Set-Cookie")).toBeNull();
    expect(refused.headers.get("Retry-After")).toBe("900");
    expect(await refused.text()).toContain("Too many sign-in attempts from your address");
    expect((await post("/web/login", { token: "again" }, addr)).status).toBe(429);
    const rows = await auditRows(`web:${addr}`);
    expect(rows).toHaveLength(1);
    expect(rows[0]?.action).toBe("web_sign_in_limited");
    expect(JSON.parse(rows[0]?.detail ?? "{}")).toMatchObject({ kind: "token", limit: "address" });
    // Another address is unaffected and signs in.
    expect((await post("/web/login", { token: API_TOKEN }, "198.51.100.8")).status).toBe(303);
  });

  it("refuses guesses sharing a token prefix even from fresh addresses, and never logs the prefix", async () => {
    const prefix = "guessAAA";
    for (let i = 0; i < SIGN_IN_PER_PREFIX; i++) {
      expect((await post("/web/login", { token: `${prefix}${i}` }, `203.0.113.${i + 1}`)).status).toBe(401);
    }
    const res = await post("/web/login", { token: `${prefix}zz` }, "203.0.113.200");
    expect(res.status).toBe(429);
    expect(await res.text()).toContain("Too many sign-in attempts with this token");
    const rows = await auditRows("web:203.0.113.200");
    expect(rows.map((r) => JSON.parse(r.detail))).toEqual([{ kind: "token", limit: "prefix", windowMinutes: 15 }]);
    expect(rows[0]?.detail).not.toContain(prefix);
  });

  it("limits one-time link redemption per address too, before the code is used", async () => {
    const addr = "192.0.2.33";
    for (let i = 0; i < SIGN_IN_PER_ADDRESS; i++) {
      expect((await post("/web/link", { code: crypto.randomUUID() }, addr)).status).toBe(401);
    }
    const { code } = await issueLoginLink(env, "42");
    expect((await post("/web/link", { code }, addr)).status).toBe(429);
    // The refused attempt did not spend the link: it still works from elsewhere.
    expect((await post("/web/link", { code }, "192.0.2.34")).status).toBe(303);
  });
});
