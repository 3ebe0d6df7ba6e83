// The client's address for per-client limits. On Cloudflare every request carries
// CF-Connecting-IP (set by the edge, not forgeable by the client). Locally (wrangler dev, tests)
// it is absent: all such requests count as one client, "local" — one machine's own callers.
import type { Context } from "hono";

export function clientAddress(c: Context): string {
  const ip = c.req.header("CF-Connecting-IP")?.trim();
  return ip && /^[0-9A-Fa-f.:]{2,45}$/.test(ip) ? ip : "local";
}

/** The counter bucket for failed pairing attempts of this client in the current minute. */
export function pairFailureBucket(c: Context, now = Date.now()): string {
  return `pair_failures:${clientAddress(c)}:${Math.floor(now / 60_000)}`;
}
