// GET /metrics: Prometheus text exposition (version 0.0.4), behind the API token. Values come
// from the ledger's counters (kept at each transition), provider checks and the agent registry.
import { Hono } from "hono";
import { isTerminal, JobStatusSchema } from "../../protocol/index.ts";
import { registryStub } from "../agents/registry-stub.ts";
import { apiAuth } from "../http/auth.ts";
import { activeStatusCountsSql, type Histogram, histogramFrom } from "../ledger/metric-counters.ts";
import { getDb, readCounters } from "../ledger/store.ts";
import { providerStats } from "../sentinel/monitor.ts";

class Exposition {
  private readonly lines: string[] = [];
  metric(name: string, type: "gauge" | "counter" | "histogram", help: string): this {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    return this;
  }
  sample(name: string, value: number, labels: Record<string, string> = {}): this {
    const l = Object.entries(labels)
      .map(([k, v]) => `${k}="${v.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`)
      .join(",");
    this.lines.push(`${name}${l ? `{${l}}` : ""} ${Number.isFinite(value) ? value : 0}`);
    return this;
  }
  histogram(name: string, help: string, h: Histogram): this {
    this.metric(name, "histogram", help);
    h.buckets.forEach((le, i) => {
      this.sample(`${name}_bucket`, h.counts[i] ?? 0, { le: String(le) });
    });
    this.sample(`${name}_bucket`, h.count, { le: "+Inf" });
    this.sample(`${name}_sum`, Number(h.sumS.toFixed(3)));
    this.sample(`${name}_count`, h.count);
    return this;
  }
  text(): string {
    return `${this.lines.join("\n")}\n`;
  }
}

export const metricsRoutes = new Hono<{ Bindings: Env }>().get("/metrics", apiAuth(), async (c) => {
  const db = getDb(c.env.DB);
  // Counters (kept at each final transition, metric-counters.ts, and by the jobs' model-token
  // triggers) and the active jobs' entries of the status index: no scan of finished jobs.
  const [counters, active, agents, openclaw] = await Promise.all([
    readCounters(db),
    c.env.DB.prepare(activeStatusCountsSql).all<{ status: string; n: number }>(),
    registryStub(c.env)
      .listAgents()
      .then((a) => a.length)
      .catch(() => 0),
    providerStats(db, "openclaw"),
  ]);
  const out = new Exposition();
  out.metric("skynet_jobs", "gauge", "Jobs in the ledger by status.");
  const activeCounts = new Map(active.results.map((r) => [r.status, r.n]));
  for (const status of JobStatusSchema.options) {
    const n = isTerminal(status) ? counters[`jobs_status:${status}`] : activeCounts.get(status);
    out.sample("skynet_jobs", Math.max(0, n ?? 0), { status });
  }
  out.histogram("skynet_dispatch_latency_seconds", "Time from QUEUED to RUNNING.", histogramFrom(counters, "dispatch"));
  out.histogram(
    "skynet_job_duration_seconds",
    "Time from RUNNING to a final state.",
    histogramFrom(counters, "duration"),
  );
  out
    .metric("skynet_agents_online", "gauge", "Agents connected to the registry.")
    .sample("skynet_agents_online", agents);
  out.metric("skynet_provider_up", "gauge", "1 when the provider's last health check passed.");
  out.sample("skynet_provider_up", openclaw.up ? 1 : 0, { provider: "openclaw" });
  out.metric("skynet_provider_degraded", "gauge", "1 when 3+ of the last 10 health checks failed.");
  out.sample("skynet_provider_degraded", openclaw.degraded ? 1 : 0, { provider: "openclaw" });
  out.metric("skynet_provider_success_ratio", "gauge", "Share of the last 10 health checks that passed.");
  out.sample("skynet_provider_success_ratio", openclaw.successRate, { provider: "openclaw" });
  out.metric("skynet_queue_retries_total", "counter", "Dispatch deliveries retried by the queue consumer.");
  out.sample("skynet_queue_retries_total", counters.queue_retries ?? 0);
  out.metric("skynet_dead_letters_total", "counter", "Dispatch messages that reached the dead-letter queue.");
  out.sample("skynet_dead_letters_total", counters.dead_letters ?? 0);
  out.metric("skynet_redispatches_total", "counter", "Jobs re-dispatched after an infrastructure failure.");
  out.sample("skynet_redispatches_total", counters["events:requeue"] ?? 0);
  out.metric("skynet_outbox_parked_total", "counter", "Job side effects parked after failing too often.");
  out.sample("skynet_outbox_parked_total", counters.outbox_parked ?? 0);
  out.metric("skynet_outbox_replayed_total", "counter", "Parked side effects put back in line by the owner.");
  out.sample("skynet_outbox_replayed_total", counters.outbox_replayed ?? 0);
  out.metric("skynet_webhook_errors_total", "counter", "Telegram updates whose handler failed (acknowledged anyway).");
  out.sample("skynet_webhook_errors_total", counters.webhook_errors ?? 0);
  out.metric("skynet_telegram_refusals_total", "counter", "Job messages Telegram refused for good, by error code.");
  for (const [name, value] of Object.entries(counters).sort()) {
    if (name.startsWith("telegram_refusals:")) {
      out.sample("skynet_telegram_refusals_total", value, { code: name.slice("telegram_refusals:".length) });
    }
  }
  out.metric("skynet_model_calls_total", "counter", "Messages API calls made for jobs (planning and answers).");
  // Kept by triggers on jobs (migration 0014) in the job metrics row: no sum over every job.
  out.sample("skynet_model_calls_total", counters["model:calls"] ?? 0);
  out.metric(
    "skynet_model_tokens_total",
    "counter",
    "Tokens those calls used, by kind (cached: read from the prompt cache).",
  );
  out.sample("skynet_model_tokens_total", counters["model:tokens:input"] ?? 0, { kind: "input" });
  out.sample("skynet_model_tokens_total", counters["model:tokens:cached"] ?? 0, { kind: "cached" });
  out.sample("skynet_model_tokens_total", counters["model:tokens:cache_write"] ?? 0, { kind: "cache_write" });
  out.sample("skynet_model_tokens_total", counters["model:tokens:output"] ?? 0, { kind: "output" });
  return c.body(out.text(), 200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" });
});
