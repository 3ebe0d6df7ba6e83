// How SKYNET runs the local wrangler: one command line for `npm run dev` and the end-to-end tests,
// so that both run the Worker the same way (loopback only).
import { join, resolve } from "node:path";

export const WRANGLER = join(resolve(import.meta.dirname, ".."), "node_modules/wrangler/bin/wrangler.js");

/** node's argv for `wrangler dev` on 127.0.0.1:`port`; callers add persistence and output flags. */
export function wranglerDev(port: number): string[] {
  return [WRANGLER, "dev", "--port", String(port), "--ip", "127.0.0.1"];
}
