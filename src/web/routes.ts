// The web console at /web: sign-in (API token → owner; a bot login link → that Telegram user),
// a cookie session on every other route, and a CSRF token on every state-changing form (plus
// hono's Origin check). Job pages show only what the bot would show the same person.
import { type Context, Hono } from "hono";
import { csrf } from "hono/csrf";
import { html } from "hono/html";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { JobIdSchema, JobStatusSchema, type JobView } from "../../protocol/index.ts";
import { jobStub } from "../agents/registry-stub.ts";
import { loadConfig } from "../config.ts";
import { approvePlan, cancelJob, createTask, denyPlan, waitWhile } from "../core/orchestrator.ts";
import { ApiError } from "../http/errors.ts";
import { boundedBody, MAX_JSON_BYTES } from "../http/limits.ts";
import { getDb, getJob, listJobEvents } from "../ledger/store.ts";
import { timingSafeEqual } from "../lib/crypto.ts";
import { archiveRoutes } from "../routes/archive.ts";
import { agentPages } from "./agents-page.ts";
import { APP_CSS, APP_JS } from "./assets.ts";
import { accessSignIn } from "./cf-access.ts";
import { errorPageFor } from "./errors.ts";
import { jobPage, jobsPage } from "./jobs-page.ts";
import { page, securityHeaders } from "./layout.ts";
import { overviewPage } from "./overview.ts";
import { JobFilterSchema, jobThread, listVisibleJobs } from "./queries.ts";
import {
  actorFor,
  csrfMatches,
  endSession,
  OWNER_ID,
  readSession,
  redeemLoginLink,
  startSession,
  type WebEnv,
} from "./session.ts";
import { signInLimitedPage, takeSignInAttempt } from "./sign-in-limit.ts";

type C = Context<WebEnv>;

const errorPage = errorPageFor;

const loginPage = (c: C, message = "", status: ContentfulStatusCode = 200) =>
  c.html(
    page({
      title: "Sign in",
      session: null,
      body: html`<h1>SKYNET console</h1>${message ? html`<p class="err">${message}</p>` : ""}
<form method="post" action="/web/login"><label>API token <input type="password" name="token" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>
<p class="muted">Or send <code>/web</code> to the bot for a one-time sign-in link.</p>`,
    }),
    status,
  );

/** The job if this person may see it (they asked for it, or they are an admin); null as for a missing job. */
async function visibleJob(c: C, rawId: string): Promise<JobView | null> {
  const id = JobIdSchema.safeParse(rawId);
  if (!id.success) return null;
  const job = await jobStub(c.env, id.data).get();
  if (!job) return null;
  const a = c.get("session").actor;
  return job.userId === a.id || a.isAdmin ? job : null;
}

/**
 * The id of a job the session may see, also once its live record was deleted after retention
 * (then its ledger row says whose it is): its archived log outlives the record.
 */
async function visibleJobId(c: C, rawId: string): Promise<string | null> {
  const live = await visibleJob(c, rawId);
  if (live) return live.id;
  const id = JobIdSchema.safeParse(rawId);
  if (!id.success) return null;
  const row = await getJob(getDb(c.env.DB), id.data);
  const a = c.get("session").actor;
  return row && (row.userId === a.id || a.isAdmin) ? row.id : null;
}

/** Runs one of the JSON API's read routes (log stream, log, artifact) after the session's check. */
const viaArchive = (c: C, path: string) =>
  archiveRoutes.fetch(new Request(new URL(path, c.req.url)), c.env, c.executionCtx);

export const webRoutes = new Hono<WebEnv>();

webRoutes.use("*", async (c, next) => {
  await next();
  securityHeaders(c);
});
webRoutes.use("*", boundedBody(MAX_JSON_BYTES));
// Origin check on every form POST (login included), in addition to the per-session token below.
webRoutes.use("*", csrf());

webRoutes.get("/static/app.js", (c) => c.body(APP_JS, 200, { "Content-Type": "text/javascript; charset=utf-8" }));
webRoutes.get("/static/app.css", (c) => c.body(APP_CSS, 200, { "Content-Type": "text/css; charset=utf-8" }));

/** Cloudflare Access sign-in (when configured): a session for the user the assertion proves. */
const viaAccess = (c: C) =>
  accessSignIn(
    c,
    (userId) => startSession(c, userId),
    (userId) => actorFor(loadConfig(c.env), userId) !== null,
  );

webRoutes.get("/login", async (c) => ((await viaAccess(c)) ? c.redirect("/web", 303) : loginPage(c)));
webRoutes.post("/login", async (c) => {
  const expected = loadConfig(c.env).apiToken;
  if (!expected) return loginPage(c, "API_TOKEN is not configured on this deployment.", 503);
  const form = await c.req.parseBody();
  const token = typeof form.token === "string" ? form.token : "";
  const limited = await takeSignInAttempt(c, "token", token);
  if (limited) return signInLimitedPage(c, "token", limited);
  if (!token || !timingSafeEqual(token, expected)) return loginPage(c, "Wrong token.", 401);
  await startSession(c, OWNER_ID);
  return c.redirect("/web", 303);
});

webRoutes.get("/link", (c) =>
  c.html(
    page({
      title: "Sign in",
      session: null,
      pageKind: "link",
      body: html`<h1>Sign in from Telegram</h1><form method="post" action="/web/link"><input type="hidden" id="code" name="code">
<button type="submit">Sign in</button></form><p class="muted">The link works once, for 10 minutes.</p>`,
    }),
  ),
);
webRoutes.post("/link", async (c) => {
  const form = await c.req.parseBody();
  const code = typeof form.code === "string" ? form.code : "";
  const limited = await takeSignInAttempt(c, "link", code);
  if (limited) return signInLimitedPage(c, "link", limited);
  const userId = await redeemLoginLink(c.env, code);
  if (!userId) return loginPage(c, "That sign-in link is unknown, used or expired. Send /web to the bot again.", 401);
  await startSession(c, userId);
  return c.redirect("/web", 303);
});

// Every route below needs a live session; every POST below needs this session's CSRF token.
webRoutes.use("*", async (c, next) => {
  const s = await readSession(c);
  if (!s) {
    if (c.req.method === "GET") {
      // Signed in by Access: come back to the same page, now with the session cookie.
      if (await viaAccess(c)) return c.redirect(new URL(c.req.url).pathname + new URL(c.req.url).search, 303);
      return c.redirect("/web/login", 303);
    }
    return c.text("signed out: sign in again", 401);
  }
  c.set("session", s);
  if (c.req.method !== "GET" && c.req.method !== "HEAD") {
    const form = await c.req.parseBody();
    if (!csrfMatches(s, form._csrf)) return errorPage(c, 403, "This form is stale or not from this session (CSRF).");
  }
  await next();
});

webRoutes.post("/logout", async (c) => {
  await endSession(c, c.get("session"));
  return c.redirect("/web/login", 303);
});

webRoutes.get("/", async (c) => {
  const f = JobFilterSchema.safeParse(c.req.query());
  if (!f.success) return errorPage(c, 400, "Bad filter.");
  const res = await listVisibleJobs(c.env.DB, c.get("session").actor, f.data);
  return c.html(jobsPage(c.get("session"), f.data, res.jobs, res.nextCursor));
});
webRoutes.get("/jobs.json", async (c) => {
  const f = JobFilterSchema.safeParse(c.req.query());
  if (!f.success) return c.json({ error: "bad filter" }, 400);
  return c.json(await listVisibleJobs(c.env.DB, c.get("session").actor, f.data));
});

/** How long the job page's watch (`?while=`) waits before it answers with the status unchanged. */
const PAGE_WATCH_S = 25;

webRoutes.get("/jobs/:id{job_[0-9a-z]+\\.json}", async (c) => {
  const job = await visibleJob(c, c.req.param("id").replace(/\.json$/, ""));
  if (!job) return c.json({ error: "not found" }, 404);
  // `?while=<status>`: the page watching its job; answered the moment the job leaves that status.
  const during = c.req.query("while");
  if (during === undefined) return c.json({ id: job.id, status: job.status });
  const status = JobStatusSchema.safeParse(during);
  if (!status.success) return c.json({ error: "while: not a job status" }, 400);
  const now = await waitWhile(c.env, job.id, [status.data], PAGE_WATCH_S);
  return c.json({ id: now.id, status: now.status });
});
webRoutes.get("/jobs/:id", async (c) => {
  const job = await visibleJob(c, c.req.param("id"));
  if (!job) return errorPage(c, 404, "No such job.");
  const [events, thread] = await Promise.all([
    listJobEvents(getDb(c.env.DB), job.id),
    jobThread(c.env.DB, c.get("session").actor, job.id),
  ]);
  return c.html(
    jobPage(
      c.get("session"),
      job,
      events.map((e) => ({ ...e, from: e.fromStatus, to: e.toStatus })),
      thread,
    ),
  );
});
webRoutes.get("/jobs/:id/logs/stream", async (c) => {
  const job = await visibleJob(c, c.req.param("id"));
  if (!job) return errorPage(c, 404, "No such job.");
  return viaArchive(c, `/jobs/${job.id}/logs/stream`);
});
webRoutes.get("/jobs/:id/log", async (c) => {
  const id = await visibleJobId(c, c.req.param("id"));
  if (!id) return errorPage(c, 404, "No such job.");
  const res = await viaArchive(c, `/jobs/${id}/log`);
  const out = new Response(res.body, res);
  out.headers.set("Content-Disposition", `attachment; filename="${id}.log"`);
  return out;
});
webRoutes.get("/jobs/:id/artifacts/:name", async (c) => {
  const job = await visibleJob(c, c.req.param("id"));
  const name = c.req.param("name");
  if (!job?.artifacts.some((a) => a.name === name)) return errorPage(c, 404, "No such artifact.");
  const res = await viaArchive(c, `/jobs/${c.req.param("id")}/artifacts/${encodeURIComponent(name)}`);
  const out = new Response(res.body, res);
  // Served as a download, never rendered in the console's origin.
  out.headers.set("Content-Disposition", "attachment");
  out.headers.set("Content-Type", "application/octet-stream");
  return out;
});

webRoutes.post("/jobs/:id/:verb{approve|deny|cancel|retry}", async (c) => {
  const job = await visibleJob(c, c.req.param("id"));
  if (!job) return errorPage(c, 404, "No such job.");
  const actor = c.get("session").actor;
  try {
    switch (c.req.param("verb")) {
      case "approve":
        await approvePlan(c.env, job.id, actor);
        break;
      case "deny":
        await denyPlan(c.env, job.id, actor, "denied from the web console");
        break;
      case "cancel":
        await cancelJob(c.env, job.id, actor, "cancelled from the web console");
        break;
      default: {
        // A Telegram user's retry counts against their task rate limit, as /retry in the bot does.
        const again = await createTask(c.env, {
          intent: job.intent,
          projectId: job.projectId,
          userId: actor.id,
          rateLimited: actor.id !== OWNER_ID,
        });
        return c.redirect(`/web/jobs/${again.id}`, 303);
      }
    }
  } catch (err) {
    if (err instanceof ApiError) return errorPage(c, err.status, err.message);
    throw err;
  }
  return c.redirect(`/web/jobs/${job.id}`, 303);
});

webRoutes.route("/", agentPages);
webRoutes.get("/overview", async (c) => {
  if (!c.get("session").actor.isAdmin) return errorPage(c, 403, "The overview is for admins.");
  return c.html(await overviewPage(c.env, c.get("session")));
});
