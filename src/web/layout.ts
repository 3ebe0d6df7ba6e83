// The page shell and the headers every console response carries. Values reach HTML only through
// hono's `html` template, which escapes every interpolated string; `raw()` is never used on data.
import type { Context } from "hono";
import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import type { WebSession } from "./session.ts";

export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

/** No inline script or style at all: the page's JS and CSS are the static routes below. */
export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ");

export function securityHeaders(c: Context): void {
  c.header("Content-Security-Policy", CSP);
  c.header("X-Content-Type-Options", "nosniff");
  c.header("Referrer-Policy", "no-referrer");
  c.header("X-Frame-Options", "DENY");
  c.header("Cache-Control", "no-store");
}

const NAV: [string, string][] = [
  ["/web", "Jobs"],
  ["/web/agents", "Agents"],
  ["/web/overview", "Overview"],
];

/** A hidden CSRF field for a state-changing form. */
export const csrfField = (s: WebSession) => html`<input type="hidden" name="_csrf" value="${s.csrf}">`;

/** A POST form with one button (Approve, Cancel, Revoke, …), carrying the session's CSRF token. */
export const postButton = (s: WebSession, action: string, label: string, cls = "") =>
  html`<form method="post" action="${action}" class="inline">${csrfField(s)}<button type="submit" class="${cls}">${label}</button></form>`;

export function page(opts: {
  title: string;
  session: WebSession | null;
  body: Html;
  pageKind?: string;
  data?: Record<string, string>;
}): Html {
  const attrs = Object.entries(opts.data ?? {}).map(([k, v]) => html` data-${k}="${v}"`);
  const nav = opts.session
    ? html`<nav>${NAV.map(([href, label]) => html`<a href="${href}">${label}</a>`)}
        <span class="who">${opts.session.actor.id === "api" ? "owner" : `telegram ${opts.session.actor.id}`}</span>
        ${postButton(opts.session, "/web/logout", "Sign out", "link")}</nav>`
    : "";
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${opts.title} · SKYNET</title><link rel="stylesheet" href="/web/static/app.css">
<script src="/web/static/app.js" defer></script></head>
<body data-page="${opts.pageKind ?? ""}"${attrs}>${nav}<main>${opts.body}</main></body></html>`;
}

export const fmtTime = (iso: string | number | null | undefined): string =>
  iso === null || iso === undefined ? "—" : new Date(iso).toISOString().replace("T", " ").slice(0, 19);
