// Model tokens per day (input, cached, output) for the overview: read from the day counters the
// ledger's triggers keep (migration 0007) — a fixed number of primary-key reads, whatever the history.
import { html } from "hono/html";
import type { Html } from "./layout.ts";

const DAY = 86_400_000;
export const TOKEN_DAYS = 14;
const KINDS = [
  ["input", "#37c"],
  ["cached", "#9bd"],
  ["output", "#e83"],
] as const;
type Kind = (typeof KINDS)[number][0];
export type DayTokens = { day: number } & Record<Kind, number>;

export async function tokensPerDay(db: D1Database, now: number): Promise<DayTokens[]> {
  const last = Math.floor(now / DAY);
  const days = Array.from({ length: TOKEN_DAYS }, (_, i) => last - TOKEN_DAYS + 1 + i);
  const names = days.flatMap((d) => KINDS.map(([k]) => `tokens_day:${d}:${k}`));
  const { results } = await db
    .prepare(`SELECT name, value FROM counters WHERE name IN (${names.map(() => "?").join(",")})`)
    .bind(...names)
    .all<{ name: string; value: number }>();
  const byName = new Map(results.map((r) => [r.name, r.value]));
  return days.map((day) => ({
    day,
    input: byName.get(`tokens_day:${day}:input`) ?? 0,
    cached: byName.get(`tokens_day:${day}:cached`) ?? 0,
    output: byName.get(`tokens_day:${day}:output`) ?? 0,
  }));
}

const fmtDay = (day: number) => new Date(day * DAY).toISOString().slice(0, 10);

/** Grouped bars per day; each bar's <title> carries the exact figure. */
export function tokensChart(days: DayTokens[]): Html {
  const W = days.length * 24;
  const H = 120;
  const max = Math.max(1, ...days.flatMap((d) => KINDS.map(([k]) => d[k])));
  const bars = days.flatMap((d, i) =>
    KINDS.map(([k, color], j) => {
      const h = (d[k] / max) * (H - 10);
      return html`<rect x="${i * 24 + 2 + j * 6}" y="${(H - h).toFixed(1)}" width="6" height="${h.toFixed(1)}" fill="${color}"><title>${fmtDay(d.day)} ${k}: ${d[k]}</title></rect>`;
    }),
  );
  const total = (k: Kind) => days.reduce((a, d) => a + d[k], 0);
  const none = KINDS.every(([k]) => total(k) === 0);
  return html`<svg class="chart" id="tokens-per-day" viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="model tokens per day, last ${days.length} days">${bars}</svg>
<p class="muted" id="token-totals">${KINDS.map(([k, color]) => html`<svg width="10" height="10"><rect width="10" height="10" fill="${color}"></rect></svg> ${k} ${total(k)} `)} · ${fmtDay(days[0]?.day ?? 0)} to ${fmtDay(days.at(-1)?.day ?? 0)} (UTC days)${none ? " · no model call recorded in these days" : ""}</p>`;
}
