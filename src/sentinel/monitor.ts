// ProviderMonitor (docs/design.md §9): health history per provider in the ledger, degraded at 3+
// failures in the last 10 checks, success rate, average latency, last success; alerts for a
// provider down or degraded and for no agent online, each sent once per outage.
import { and, desc, eq, lt } from "drizzle-orm";
import { getEngine } from "../execution/engine.ts";
import { providerChecks } from "../ledger/schema.ts";
import { type Db, getDb } from "../ledger/store.ts";
import { raiseAlert, resolveAlert } from "./alerts.ts";

export const HISTORY_WINDOW = 10;
export const DEGRADED_FAILURES = 3;
const KEEP_CHECKS = 200;

export interface ProviderStats {
  provider: string;
  checks: number;
  failures: number;
  successRate: number;
  avgLatencyMs: number;
  lastSuccess: string | null;
  up: boolean;
  degraded: boolean;
  agentsOnline: number;
}

export async function providerStats(db: Db, provider: string): Promise<ProviderStats> {
  const recent = await db
    .select()
    .from(providerChecks)
    .where(eq(providerChecks.provider, provider))
    .orderBy(desc(providerChecks.at), desc(providerChecks.id))
    .limit(HISTORY_WINDOW)
    .all();
  const lastOk = await db
    .select({ at: providerChecks.at })
    .from(providerChecks)
    .where(and(eq(providerChecks.provider, provider), eq(providerChecks.ok, true)))
    .orderBy(desc(providerChecks.at))
    .limit(1)
    .get();
  const failures = recent.filter((c) => !c.ok).length;
  const checks = recent.length;
  return {
    provider,
    checks,
    failures,
    successRate: checks === 0 ? 1 : (checks - failures) / checks,
    avgLatencyMs: checks === 0 ? 0 : Math.round(recent.reduce((a, c) => a + c.latencyMs, 0) / checks),
    lastSuccess: lastOk ? new Date(lastOk.at).toISOString() : null,
    up: recent[0]?.ok ?? true,
    degraded: failures >= DEGRADED_FAILURES,
    agentsOnline: recent[0]?.agentsOnline ?? 0,
  };
}

/** One monitoring round: check every provider, record it, raise or resolve alerts. */
export async function checkProviders(env: Env, now = Date.now()): Promise<ProviderStats[]> {
  const db = getDb(env.DB);
  const out: ProviderStats[] = [];
  for (const { name, health, latencyMs } of await getEngine(env).checkAll()) {
    await db.insert(providerChecks).values({
      provider: name,
      ok: health.ok,
      latencyMs,
      agentsOnline: health.agentsOnline,
      detail: health.detail.slice(0, 500),
      at: now,
    });
    const keepFrom = await db
      .select({ id: providerChecks.id })
      .from(providerChecks)
      .where(eq(providerChecks.provider, name))
      .orderBy(desc(providerChecks.id))
      .limit(1)
      .offset(KEEP_CHECKS)
      .get();
    if (keepFrom) {
      await db
        .delete(providerChecks)
        .where(and(eq(providerChecks.provider, name), lt(providerChecks.id, keepFrom.id)))
        .run();
    }
    const stats = await providerStats(db, name);
    out.push(stats);
    if (!stats.up) await raiseAlert(env, `provider_down:${name}`, `provider ${name} is down: ${health.detail}`, now);
    else await resolveAlert(env, `provider_down:${name}`, `provider ${name} is up again`, now);
    if (stats.degraded && stats.up) {
      await raiseAlert(
        env,
        `provider_degraded:${name}`,
        `provider ${name} is degraded: ${stats.failures} of the last ${stats.checks} checks failed`,
        now,
      );
    } else if (!stats.degraded) {
      await resolveAlert(env, `provider_degraded:${name}`, `provider ${name} is healthy again`, now);
    }
    if (health.ok && health.agentsOnline === 0) {
      await raiseAlert(env, `no_agents:${name}`, "no agent is online: new jobs will wait in the queue", now);
    } else if (health.agentsOnline > 0) {
      await resolveAlert(env, `no_agents:${name}`, `${health.agentsOnline} agent(s) online again`, now);
    }
  }
  return out;
}
