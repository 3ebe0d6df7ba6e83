// The web console's auth in workerd with real D1: API-token sign-in, the cookie's attributes, the
// bot's one-time link, sign-out revoking the session server-side, CSRF on every form, per-user
// visibility, escaping and the security headers.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createTask } from "../src/core/orchestrator.ts";
import { issueLoginLink } from "../src/web/session.ts";
import { cookieOf, web } from "./helpers/web.ts";
import { API_TOKEN } from "./helpers/worker.ts";

async function signIn(): Promise<string> {
  const res = await web("/web/login", { form: { token: API_TOKEN } });
  expect(res.status).toBe(303);
  return cookieOf(res);
}

async function csrfOf(cookie: string): Promise<string> {
  const page = await (await web("/web", { cookie })).text();
  const m = /name="_csrf" value="([0-9a-f]{64})"/.exec(page);
  if (!m?.[1]) throw new Error("no CSRF field on the page");
  return m[1];
}

const statusOf = async (id: string) =>
  (await env.DB.prepare("SELECT status FROM jobs WHERE id = ?").bind(id).first<{ status: string }>())?.status;

describe("web console auth", () => {
  it("signs in with the API token into a Secure, HttpOnly, SameSite=Strict session; a wrong token gets none", async () => {
    expect((await web("/web")).headers.get("Location")).toBe("/web/login");
    const bad = await web("/web/login", { form: { token: "nope" } });
    expect(bad.status).toBe(401);
    expect(bad.headers.get("Set-Cookie")).toBeNull();
    const res = await web("/web/login", { form: { token: API_TOKEN } });
    const set = res.headers.get("Set-Cookie") ?? "";
    expect(set).toMatch(/^__Host-skynet_web=[0-9a-f]{64}\.[0-9a-f]{64};/);
    expect(set).toMatch(/HttpOnly/);
    expect(set).toMatch(/Secure/);
    expect(set).toMatch(/SameSite=Strict/);
    expect(set).toMatch(/Max-Age=43200/);
    const page = await web("/web", { cookie: cookieOf(res) });
    expect(page.status).toBe(200);
    const text = await page.text();
    expect(text).toContain("<h1>Jobs</h1>");
    expect(text).not.toContain(API_TOKEN);
    // D1 holds only the id's hash, never the cookie's id.
    const sid = cookieOf(res).split("=")[1]?.split(".")[0] ?? "";
    const rows = await env.DB.prepare("SELECT id_hash FROM web_sessions").all<{ id_hash: string }>();
    expect(rows.results.some((r) => r.id_hash === sid)).toBe(false);
  });

  it("refuses a cookie whose MAC does not match, and a login POST from another origin", async () => {
    const cookie = await signIn();
    const forged = cookie.replace(/.$/, (ch) => (ch === "0" ? "1" : "0"));
    expect((await web("/web", { cookie: forged })).status).toBe(303);
    expect((await web("/web/login", { form: { token: API_TOKEN }, origin: "https://evil.example" })).status).toBe(403);
  });

  it("CSRF: a POST without the token or with another session's token is refused and changes nothing", async () => {
    const job = await createTask(env, { intent: "run the tests", projectId: "default", userId: "api" });
    const a = await signIn();
    const b = await signIn();
    const csrfB = await csrfOf(b);
    const forms: Record<string, string>[] = [{}, { _csrf: csrfB }, { _csrf: "0".repeat(64) }];
    for (const form of forms) {
      const res = await web(`/web/jobs/${job.id}/cancel`, { cookie: a, form });
      expect(res.status).toBe(403);
      expect(await statusOf(job.id)).toBe(job.status);
    }
    const ok = await web(`/web/jobs/${job.id}/cancel`, { cookie: a, form: { _csrf: await csrfOf(a) } });
    expect(ok.status).toBe(303);
    expect(await statusOf(job.id)).toBe("CANCELLED");
  });

  it("sign-out ends the session on the server: the old cookie is refused for pages and forms", async () => {
    const cookie = await signIn();
    const csrf = await csrfOf(cookie);
    expect((await web("/web/logout", { cookie, form: { _csrf: csrf } })).status).toBe(303);
    expect((await web("/web", { cookie })).headers.get("Location")).toBe("/web/login");
    const job = await createTask(env, { intent: "run the tests", projectId: "default", userId: "api" });
    expect((await web(`/web/jobs/${job.id}/cancel`, { cookie, form: { _csrf: csrf } })).status).toBe(401);
    expect(await statusOf(job.id)).toBe(job.status);
  });

  it("an expired session is refused", async () => {
    const cookie = await signIn();
    expect((await web("/web", { cookie })).status).toBe(200);
    await env.DB.prepare("UPDATE web_sessions SET expires_at = ?")
      .bind(Date.now() - 1)
      .run();
    expect((await web("/web", { cookie })).headers.get("Location")).toBe("/web/login");
  });

  it("a bot login link works once, signs in as that Telegram user, who sees only their own jobs", async () => {
    const theirs = await createTask(env, { intent: "check git status", projectId: "default", userId: "42" });
    const other = await createTask(env, { intent: "check git status", projectId: "default", userId: "44" });
    const { code } = await issueLoginLink(env, "42");
    const stored = await env.DB.prepare("SELECT code_hash FROM web_login_links").all<{ code_hash: string }>();
    expect(stored.results.some((r) => r.code_hash === code)).toBe(false);
    const res = await web("/web/link", { form: { code } });
    expect(res.status).toBe(303);
    const cookie = cookieOf(res);
    expect((await web("/web/link", { form: { code } })).status).toBe(401);
    expect((await web(`/web/jobs/${theirs.id}`, { cookie })).status).toBe(200);
    expect((await web(`/web/jobs/${other.id}`, { cookie })).status).toBe(404);
    expect((await web(`/web/jobs/${other.id}/logs/stream`, { cookie })).status).toBe(404);
    const list = await (await web("/web/jobs.json", { cookie })).json<{ jobs: { id: string }[] }>();
    expect(list.jobs.map((j) => j.id)).toContain(theirs.id);
    expect(list.jobs.map((j) => j.id)).not.toContain(other.id);
    expect((await web("/web/agents", { cookie })).status).toBe(403);
    // An admin's link sees everyone's jobs.
    const admin = cookieOf(await web("/web/link", { form: { code: (await issueLoginLink(env, "43")).code } }));
    expect((await web(`/web/jobs/${other.id}`, { cookie: admin })).status).toBe(200);
  });

  it("an expired link, or one for a user no longer allowed, signs no one in", async () => {
    const { code } = await issueLoginLink(env, "42");
    await env.DB.prepare("UPDATE web_login_links SET expires_at = 1").run();
    expect((await web("/web/link", { form: { code } })).status).toBe(401);
    const stranger = await issueLoginLink(env, "999");
    const res = await web("/web/link", { form: { code: stranger.code } });
    expect((await web("/web", { cookie: cookieOf(res) })).status).toBe(303);
  });

  it("escapes a hostile intent and sends CSP, nosniff, no-referrer and frame-ancestors 'none'", async () => {
    const hostile = `<img src=x onerror=alert(1)></script><script>alert(2)</script>"'`;
    const job = await createTask(env, { intent: hostile, projectId: "default", userId: "api" });
    const cookie = await signIn();
    for (const path of ["/web", `/web/jobs/${job.id}`]) {
      const res = await web(path, { cookie });
      const text = await res.text();
      expect(text).not.toContain("<img src=x");
      expect(text).not.toContain("<script>alert");
      expect(text).toContain("&lt;img src=x onerror=alert(1)&gt;&lt;/script&gt;");
      const csp = res.headers.get("Content-Security-Policy") ?? "";
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain("unsafe-inline");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(res.headers.get("X-Content-Type-Options")).toBe("nosniff");
      expect(res.headers.get("Referrer-Policy")).toBe("no-referrer");
      // The only scripts are the static route: no inline <script> body at all.
      expect(text.match(/<script[^>]*>/g)).toEqual(['<script src="/web/static/app.js" defer>']);
    }
  });
});
