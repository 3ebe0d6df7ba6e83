// Helpers for the web console's worker tests: a browser-like request to the Worker (same-origin
// by default, forms posted url-encoded, redirects not followed) and the session cookie it sets.
import { exports } from "cloudflare:workers";
import { BASE } from "./worker.ts";

export function web(
  path: string,
  /** `origin: null` sends no Origin header at all (a non-browser client, or a stripped one). */
  init: { method?: string; cookie?: string; form?: Record<string, string>; origin?: string | null } = {},
): Promise<Response> {
  const headers = new Headers();
  if (init.cookie) headers.set("Cookie", init.cookie);
  let body: string | undefined;
  if (init.form) {
    headers.set("Content-Type", "application/x-www-form-urlencoded");
    body = new URLSearchParams(init.form).toString();
  }
  if (init.origin !== null) headers.set("Origin", init.origin ?? BASE);
  return exports.default.fetch(
    new Request(`${BASE}${path}`, {
      method: init.method ?? (init.form ? "POST" : "GET"),
      headers,
      body,
      redirect: "manual",
    }),
  );
}

/** The `name=value` part of the response's Set-Cookie (empty when it sets none). */
export const cookieOf = (res: Response): string => (res.headers.get("Set-Cookie") ?? "").split(";")[0] ?? "";
