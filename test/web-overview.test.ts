// The overview's numbers from a ledger written here: jobs per hour by outcome (only the last 24 h),
// queued→running and running→finished percentiles, provider health, dead letters; admins only.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { getDb, upsertJob } from "../src/ledger/store.ts";
import { percentile } from "../src/web/overview.ts";
import { issueLoginLink } from "../src/web/session.ts";
import { cookieOf, web } from "./helpers/web.ts";
import { API_TOKEN } from "./helpers/worker.ts";

const DAY = 86_400_000;

/** A job row as the ledger holds it: its transitions on the row (jobs.events, migration 0012). */
async function job(id: string, status: string, createdAt: number, events: [string, number][]) {
  const list = events.map(([to, at], i) => ({ seq: i + 1, from: null, to, event: "e", detail: null, at }));
  await env.DB.prepare(
    "INSERT INTO jobs (id, project_id, user_id, intent, status, created_at, updated_at, events) VALUES (?, 'default', 'api', 'x', ?, ?, ?, ?)",
  )
    .bind(id, status, createdAt, createdAt, JSON.stringify(list))
    .run();
}

describe("web overview", () => {
  it("percentile picks the nearest rank and says unknown for no data", () => {
    expect(percentile([], 50)).toBeNull();
    expect(percentile([100, 300], 50)).toBe(100);
    expect(percentile([100, 300], 90)).toBe(300);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90)).toBe(9);
  });

  it("draws the last 24 h from the ledger and leaves older jobs out", async () => {
    const hour = Math.floor(Date.now() / 3600_000) * 3600_000;
    const t = hour - 2 * 3600_000 + 60_000;
    await job("job_aaaaaaaaaa01", "SUCCEEDED", t, [
      ["QUEUED", t],
      ["RUNNING", t + 100],
      ["SUCCEEDED", t + 1100],
    ]);
    await job("job_aaaaaaaaaa02", "SUCCEEDED", t, [
      ["QUEUED", t],
      ["RUNNING", t + 300],
      ["SUCCEEDED", t + 5300],
    ]);
    await job("job_aaaaaaaaaa03", "FAILED", t, [
      ["QUEUED", t],
      ["FAILED", t + 50],
    ]);
    const old = Date.now() - 72 * 3600_000;
    await job("job_aaaaaaaaaa04", "SUCCEEDED", old, [
      ["QUEUED", old],
      ["RUNNING", old + 99_000],
      ["SUCCEEDED", old + 200_000],
    ]);
    await env.DB.prepare(
      "INSERT INTO provider_checks (provider, ok, latency_ms, agents_online, detail, at) VALUES ('chathan', 0, 12, 0, 'no agent <b>', ?)",
    )
      .bind(Date.now())
      .run();
    await env.DB.prepare(
      "INSERT INTO audit_log (actor, action, job_id, detail, at) VALUES ('queue', 'dead_letter', 'job_aaaaaaaaaa03', 'gave up', ?)",
    )
      .bind(Date.now())
      .run();
    const owner = cookieOf(await web("/web/login", { form: { token: API_TOKEN } }));
    const page = await (await web("/web/overview", { cookie: owner })).text();
    const hourSvg = /<svg class="chart" id="jobs-per-hour"[\s\S]*?<\/svg>/.exec(page)?.[0] ?? "";
    const titles = [...hourSvg.matchAll(/<title>[^<]* (\w+): (\d+)<\/title>/g)].map((m) => `${m[1]}=${m[2]}`);
    expect(titles.sort()).toEqual(["FAILED=1", "SUCCEEDED=2"]);
    const pct = /<table id="percentiles">([\s\S]*?)<\/table>/.exec(page)?.[1] ?? "";
    expect(pct).toMatch(/queued → running<\/th><td>100 ms<\/td><td>300 ms<\/td><td>300 ms<\/td><td>2<\/td>/);
    expect(pct).toMatch(/running → finished<\/th><td>1\.0 s<\/td><td>5\.0 s<\/td><td>5\.0 s<\/td><td>2<\/td>/);
    expect(page).toMatch(/<td>chathan<\/td><td class="err">unhealthy<\/td>/);
    expect(page).toContain("no agent &lt;b&gt;");
    expect(page).toMatch(/<table id="dead-letters">[\s\S]*job_aaaaaaaaaa03[\s\S]*gave up/);
    expect(page).toContain('id="tokens-per-day"');
    expect(page).toContain("no model call recorded in these days");
  });

  it("counts model tokens per day from the job snapshots as they are written, each token once", async () => {
    const db = getDb(env.DB);
    const day = Math.floor(Date.now() / DAY);
    const yesterday = (day - 1) * DAY + 1000;
    const today = day * DAY + 1000;
    const base = { id: "job_tttttttttt01", projectId: "default", userId: "api", intent: "x", status: "PLANNING" };
    const snap = (updatedAt: number, input: number, cached: number, output: number) =>
      upsertJob(db, {
        ...base,
        createdAt: yesterday,
        updatedAt,
        tokensInput: input,
        tokensCached: cached,
        tokensOutput: output,
      });
    await snap(yesterday, 1000, 200, 50); // planned yesterday
    await snap(yesterday + 10, 1000, 200, 50); // a replayed snapshot: nothing new
    await snap(today, 1600, 900, 120); // the answer, written today: +600 input, +700 cached, +70 output
    await snap(today - 5, 1000, 200, 50); // an older snapshot arriving late is not applied
    await upsertJob(db, { ...base, id: "job_tttttttttt02", createdAt: today, updatedAt: today, tokensInput: 5 });
    const owner = cookieOf(await web("/web/login", { form: { token: API_TOKEN } }));
    const page = await (await web("/web/overview", { cookie: owner })).text();
    const svg = /<svg class="chart" id="tokens-per-day"[\s\S]*?<\/svg>/.exec(page)?.[0] ?? "";
    const figures = Object.fromEntries(
      [...svg.matchAll(/<title>(\S+) (\w+): (\d+)<\/title>/g)].map((m) => [`${m[1]} ${m[2]}`, Number(m[3])]),
    );
    const iso = (d: number) => new Date(d * DAY).toISOString().slice(0, 10);
    expect(Object.keys(figures)).toHaveLength(3 * 14);
    expect([
      figures[`${iso(day - 1)} input`],
      figures[`${iso(day - 1)} cached`],
      figures[`${iso(day - 1)} output`],
    ]).toEqual([1000, 200, 50]);
    expect([figures[`${iso(day)} input`], figures[`${iso(day)} cached`], figures[`${iso(day)} output`]]).toEqual([
      605, 700, 70,
    ]);
    expect(figures[`${iso(day - 2)} input`]).toBe(0);
    expect(page).toMatch(/input 1605 [\s\S]*cached 900 [\s\S]*output 120 /);
    expect(page).not.toContain("no model call recorded");
  });

  it("is for admins only", async () => {
    const res = await web("/web/link", { form: { code: (await issueLoginLink(env, "42")).code } });
    expect((await web("/web/overview", { cookie: cookieOf(res) })).status).toBe(403);
  });
});
