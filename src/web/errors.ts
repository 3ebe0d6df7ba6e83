// An error as a console page (the JSON API's errors stay JSON).
import type { Context } from "hono";
import { html } from "hono/html";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { page } from "./layout.ts";
import type { WebSession } from "./session.ts";

export function errorPageFor(
  c: Context<{ Bindings: Env; Variables: { session: WebSession } }>,
  status: ContentfulStatusCode,
  message: string,
) {
  const s = c.get("session") ?? null;
  return c.html(
    page({ title: "Error", session: s, body: html`<h1>${status}</h1><p class="err">${message}</p>` }),
    status,
  );
}
