// Overview (admins): the last 24 h from the ledger, every read bounded by an index on time (jobs by
// created_at, audit_log by at, the newest provider checks by id) — never a scan of all history.
// Model tokens per day come from day counters (tokens-chart.ts). Charts are inline SVG drawn here; no script draws anything.
import { html } from "hono/html";
import { isTerminal } from "../../protocol/index.ts";
import { fmtTime, type Html, page } from "./layout.ts";
import type { WebSession } from "./session.ts";
import { tokensChart, tokensPerDay } from "./tokens-chart.ts";

const HOUR = 3600_000;
const OUTCOMES = [
  ["SUCCEEDED", "#2a7"],
  ["FAILED", "#c33"],
  ["CANCELLED", "#999"],
  ["active", "#37c"],
] as const;

export function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? null;
}

const fmtMs = (ms: number | null) => (ms === null ? "unknown" : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`);

function hourChart(buckets: Map<number, Record<string, number>>, firstHour: number): Html {
  const W = 24 * 14;
  const H = 120;
  const max = Math.max(1, ...[...buckets.values()].map((b) => Object.values(b).reduce((a, n) => a + n, 0)));
  const bars = [];
  for (let i = 0; i < 24; i++) {
    const b = buckets.get(firstHour + i) ?? {};
    let y = H;
    for (const [key, color] of OUTCOMES) {
      const n = b[key] ?? 0;
      if (!n) continue;
      const h = (n / max) * (H - 10);
      y -= h;
      bars.push(
        html`<rect x="${i * 14 + 1}" y="${y.toFixed(1)}" width="12" height="${h.toFixed(1)}" fill="${color}"><title>${fmtTime((firstHour + i) * HOUR)} ${key}: ${n}</title></rect>`,
      );
    }
  }
  return html`<svg class="chart" id="jobs-per-hour" viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="jobs per hour by outcome, last 24 hours">${bars}</svg>
<p class="muted">${OUTCOMES.map(([k, color]) => html`<svg width="10" height="10"><rect width="10" height="10" fill="${color}"></rect></svg> ${k} `)} · peak ${max} job(s)/hour</p>`;
}

export async function overviewPage(env: Env, s: WebSession): Promise<Html> {
  const now = Date.now();
  const since = now - 24 * HOUR;
  const firstHour = Math.floor(since / HOUR) + 1;
  const [perHour, times, checks, dead, tokens] = await Promise.all([
    env.DB.prepare(
      "SELECT created_at / 3600000 AS h, status, COUNT(*) AS n FROM jobs WHERE created_at >= ? GROUP BY h, status",
    )
      .bind(firstHour * HOUR)
      .all<{ h: number; status: string; n: number }>(),
    env.DB.prepare(
      // The events ride on the job's row (migration 0012): the day's jobs, each with its own.
      `SELECT j.id AS job_id, json_extract(e.value, '$.to') AS to_status, MIN(json_extract(e.value, '$.at')) AS at
       FROM jobs j, json_each(j.events) e
       WHERE j.created_at >= ? AND json_extract(e.value, '$.to') IN ('QUEUED','RUNNING','SUCCEEDED','FAILED','CANCELLED')
       GROUP BY j.id, to_status LIMIT 50000`,
    )
      .bind(since)
      .all<{ job_id: string; to_status: string; at: number }>(),
    env.DB.prepare(
      "SELECT provider, ok, latency_ms, agents_online, detail, at FROM provider_checks ORDER BY id DESC LIMIT 100",
    ).all<{
      provider: string;
      ok: number;
      latency_ms: number;
      agents_online: number;
      detail: string | null;
      at: number;
    }>(),
    env.DB.prepare(
      "SELECT job_id, detail, at FROM audit_log WHERE at >= ? AND action = 'dead_letter' ORDER BY at DESC LIMIT 20",
    )
      .bind(since)
      .all<{ job_id: string | null; detail: string | null; at: number }>(),
    tokensPerDay(env.DB, now),
  ]);
  const buckets = new Map<number, Record<string, number>>();
  for (const r of perHour.results) {
    const key = isTerminal(r.status) ? r.status : "active";
    const b = buckets.get(r.h) ?? {};
    b[key] = (b[key] ?? 0) + r.n;
    buckets.set(r.h, b);
  }
  const byJob = new Map<string, Record<string, number>>();
  for (const r of times.results) byJob.set(r.job_id, { ...byJob.get(r.job_id), [r.to_status]: r.at });
  const latency: number[] = [];
  const duration: number[] = [];
  for (const t of byJob.values()) {
    if (t.QUEUED !== undefined && t.RUNNING !== undefined) latency.push(t.RUNNING - t.QUEUED);
    const end = t.SUCCEEDED ?? t.FAILED ?? t.CANCELLED;
    if (t.RUNNING !== undefined && end !== undefined) duration.push(end - t.RUNNING);
  }
  latency.sort((a, b) => a - b);
  duration.sort((a, b) => a - b);
  const pRow = (label: string, xs: number[]) =>
    html`<tr><th>${label}</th><td>${fmtMs(percentile(xs, 50))}</td><td>${fmtMs(percentile(xs, 90))}</td><td>${fmtMs(percentile(xs, 99))}</td><td>${xs.length}</td></tr>`;
  const latest = new Map<string, (typeof checks.results)[number]>();
  for (const c of checks.results) if (!latest.has(c.provider)) latest.set(c.provider, c);
  const body = html`<h1>Overview</h1><h2>Jobs per hour, last 24 h</h2>${hourChart(buckets, firstHour)}
<h2>Dispatch latency and duration (jobs created in the last 24 h)</h2>
<table id="percentiles"><thead><tr><th></th><th>p50</th><th>p90</th><th>p99</th><th>jobs</th></tr></thead>
${pRow("queued → running", latency)}${pRow("running → finished", duration)}</table>
<h2>Providers</h2>${
    latest.size
      ? html`<table id="providers">${[...latest.values()].map(
          (p) =>
            html`<tr><td>${p.provider}</td><td class="${p.ok ? "" : "err"}">${p.ok ? "healthy" : "unhealthy"}</td><td>${p.latency_ms} ms</td><td>${p.agents_online} agent(s)</td><td>${p.detail ?? ""}</td><td>${fmtTime(p.at)}</td></tr>`,
        )}</table>`
      : html`<p class="muted">No provider check recorded yet (the Sentinel runs on cron): unknown.</p>`
  }
<h2>Model tokens per day</h2>${tokensChart(tokens)}
<h2>Dead letters, last 24 h</h2>${
    dead.results.length
      ? html`<table id="dead-letters">${dead.results.map(
          (d) =>
            html`<tr><td>${fmtTime(d.at)}</td><td>${d.job_id ? html`<a href="/web/jobs/${d.job_id}">${d.job_id}</a>` : "—"}</td><td>${d.detail ?? ""}</td></tr>`,
        )}</table>`
      : html`<p class="muted">None.</p>`
  }`;
  return page({ title: "Overview", session: s, body, pageKind: "overview" });
}
