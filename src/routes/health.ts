// GET /health: the configuration is valid, D1, R2 and the agent registry answer; agents online.
// 503 when one fails.
import { Hono } from "hono";
import { registryStub } from "../agents/registry-stub.ts";
import { parseConfig } from "../config.ts";
import { errorMessage } from "../lib/log.ts";

async function check(fn: () => Promise<unknown>): Promise<{ ok: boolean; error?: string }> {
  try {
    await fn();
    return { ok: true };
  } catch (err) {
    return { ok: false, error: errorMessage(err) };
  }
}

export const healthRoutes = new Hono<{ Bindings: Env }>().get("/health", async (c) => {
  let agentsOnline = 0;
  const [d1, r2, registry] = await Promise.all([
    check(() => c.env.DB.prepare("SELECT 1").first()),
    check(() => c.env.ARCHIVE.head("health-probe")),
    check(async () => {
      agentsOnline = (await registryStub(c.env).listAgents()).length;
    }),
  ]);
  const parsed = parseConfig(c.env);
  const config = parsed.ok ? { ok: true } : { ok: false, error: parsed.error };
  const ok = config.ok && d1.ok && r2.ok && registry.ok;
  return c.json({ ok, checks: { config, d1, r2, registry }, agentsOnline }, ok ? 200 : 503);
});
