// Sentinel, provider monitor, archive and metrics, with the scheduled handler and alarms driven
// directly inside workerd.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ArtifactStore } from "../src/archive/artifacts.ts";
import { logKey, putLogInR2 } from "../src/jobs/archive-log.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { raiseAlert, resolveAlert } from "../src/sentinel/alerts.ts";
import { checkProviders } from "../src/sentinel/monitor.ts";
import { EVENTS_CURSOR, JOBS_PER_RUN, pruneHistory } from "../src/sentinel/retention.ts";
import { runSentinel } from "../src/sentinel/sentinel.ts";
import { runScheduled } from "./helpers/handlers.ts";
import { insides } from "./helpers/job-insides.ts";
import { api, pairAgent, TestAgent } from "./helpers/worker.ts";

const stub = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));
const DAYS = { history: 365, logs: 30 };

async function until(fn: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function runningJob(project: string, intent: string, agent: TestAgent) {
  const jobId = newJobId();
  await stub(jobId).create({ jobId, projectId: project, intent, userId: "42", chatId: null });
  await runDurableObjectAlarm(stub(jobId));
  const planned = await stub(jobId).get();
  if (planned?.status === "PLANNED") await stub(jobId).approve({ id: "42", isAdmin: false });
  await stub(jobId).dispatch(1);
  const offer = await agent.next("job_offer");
  const fence = { jobId, attempt: offer.attempt, leaseToken: offer.leaseToken };
  agent.send({ type: "job_accept", ...fence });
  await until(async () => (await stub(jobId).get())?.status === "RUNNING", "RUNNING");
  return { jobId, fence };
}

describe("Sentinel", () => {
  it("marks a silent agent OFFLINE and re-dispatches its READ_ONLY job", async () => {
    const { agentId, token } = await pairAgent("silent");
    const agent = await TestAgent.connect(token, { workspaces: ["silent"] });
    const { jobId } = await runningJob("silent", "check git status", agent);
    // The agent's last heartbeat was long ago (it froze without closing its socket).
    await env.DB.prepare("UPDATE workers SET last_heartbeat_at = ? WHERE id = ?")
      .bind(Date.now() - 3_600_000, agentId)
      .run();
    await runScheduled();
    const worker = await env.DB.prepare("SELECT status FROM workers WHERE id = ?")
      .bind(agentId)
      .first<{ status: string }>();
    expect(worker?.status).toBe("OFFLINE");
    const job = await stub(jobId).get();
    expect(job?.attempt).toBe(2);
    expect(job?.status).toBe("QUEUED"); // the silent agent never accepts attempt 2
    agent.close();
  });

  it("fails a job stuck past the job timeout", async () => {
    const { token } = await pairAgent("stuck");
    const agent = await TestAgent.connect(token, { workspaces: ["stuck"] });
    const { jobId } = await runningJob("stuck", "check git status", agent);
    await runInDurableObject(stub(jobId), (i: JobDO) => {
      const s = insides(i).load();
      if (!s) throw new Error("no state");
      s.startedAt = Date.now() - 10 * 3_600_000;
      insides(i).save(s);
    });
    await runScheduled();
    const job = await stub(jobId).get();
    expect(job?.status).toBe("FAILED");
    expect(job?.error).toMatch(/timed out/);
    agent.close();
  });

  it("cancels an approval that expired even when its alarm was missed", async () => {
    const jobId = newJobId();
    await stub(jobId).create({ jobId, projectId: "default", intent: "run the tests", userId: "42", chatId: null });
    await runDurableObjectAlarm(stub(jobId));
    await runInDurableObject(stub(jobId), async (i: JobDO) => {
      const s = insides(i).load();
      if (!s) throw new Error("no state");
      s.approvalDeadline = Date.now() - 1;
      insides(i).save(s);
      await insides(i).ctx.storage.deleteAlarm();
    });
    await runScheduled();
    const job = await stub(jobId).get();
    expect(job?.status).toBe("CANCELLED");
  });
});

describe("alerts and the provider monitor", () => {
  it("sends one alert per outage and one recovery", async () => {
    const sent = async () =>
      env.DB.prepare("SELECT active, last_sent_at, resolved_at FROM alerts WHERE key = 'test:outage'").first<{
        active: number;
        last_sent_at: number;
        resolved_at: number | null;
      }>();
    const t0 = Date.now();
    expect(await raiseAlert(env, "test:outage", "it broke", t0)).toBe(true);
    expect(await raiseAlert(env, "test:outage", "it broke", t0 + 60_000)).toBe(false);
    expect(await raiseAlert(env, "test:outage", "it broke", t0 + 120_000)).toBe(false);
    expect((await sent())?.last_sent_at).toBe(t0);
    expect(await resolveAlert(env, "test:outage", "fixed", t0 + 180_000)).toBe(true);
    expect(await resolveAlert(env, "test:outage", "fixed", t0 + 240_000)).toBe(false);
    expect(await sent()).toMatchObject({ active: 0, resolved_at: t0 + 180_000 });
    // A new outage is a new alert.
    expect(await raiseAlert(env, "test:outage", "it broke again", t0 + 300_000)).toBe(true);
    // What the admin (user 43) actually received from the Bot API stand-in.
    const calls = (await (await fetch(`${env.TELEGRAM_API_ROOT}/__calls`)).json()) as {
      method: string;
      params: { chat_id: string | number; text: string };
    }[];
    const mine = calls.filter((c) => c.method === "sendMessage" && /it broke|recovered.*fixed/.test(c.params.text));
    expect(mine.map((c) => [String(c.params.chat_id), c.params.text.split("\n").at(-1)])).toEqual([
      ["43", "it broke"],
      ["43", "✅ <b>recovered</b>: fixed (after ~3 min)"],
      ["43", "it broke again"],
    ]);
  });

  it("records provider health and computes success rate and degradation", async () => {
    const stats = await checkProviders(env);
    const openclaw = stats.find((s) => s.provider === "openclaw");
    expect(openclaw?.up).toBe(true);
    expect(openclaw?.checks).toBeGreaterThanOrEqual(1);
    for (let i = 0; i < 3; i++) {
      await env.DB.prepare(
        "INSERT INTO provider_checks (provider, ok, latency_ms, agents_online, detail, at) VALUES ('openclaw', 0, 5, 0, 'down', ?)",
      )
        .bind(Date.now() + 1000 + i)
        .run();
    }
    const { providerStats } = await import("../src/sentinel/monitor.ts");
    const { getDb } = await import("../src/ledger/store.ts");
    const after = await providerStats(getDb(env.DB), "openclaw");
    expect(after.failures).toBeGreaterThanOrEqual(3);
    expect(after.degraded).toBe(true);
    expect(after.up).toBe(false);
    expect(after.successRate).toBeLessThan(1);
  });
});

describe("archive", () => {
  it("leaves the R2 archive to its lifecycle rules: the Sentinel lists and deletes nothing there", async () => {
    await env.ARCHIVE.put("logs/jobs/job_old0000000000.log", "old");
    const listed: string[] = [];
    const archive = new Proxy(env.ARCHIVE, {
      get(target, prop) {
        if (prop === "list" || prop === "delete") listed.push(String(prop));
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    // Ten years on: everything is past retention, and still no listing.
    await runSentinel({ ...env, ARCHIVE: archive }, Date.now() + 3650 * 86_400_000);
    expect(listed).toEqual([]);
    expect(await env.ARCHIVE.head("logs/jobs/job_old0000000000.log")).not.toBeNull();
  });

  it("prunes past pairing counters every run and old events hourly, a bounded batch at a time", async () => {
    const now = Date.UTC(2030, 0, 1, 12, 0, 0);
    const minute = Math.floor(now / 60_000);
    // Another test's Sentinel run, far in the future, moves the walk's cursor past these jobs
    // when the suite happens to run on the hour: this test starts its own walk.
    await env.DB.prepare("DELETE FROM counters WHERE name = ?").bind(EVENTS_CURSOR).run();
    await env.DB.batch([
      env.DB.prepare("INSERT INTO counters (name, value) VALUES (?, 3), (?, 4), (?, 5)").bind(
        `pair_failures:203.0.113.9:${minute - 5}`,
        `pair_failures:203.0.113.9:${minute + 1}`,
        "queue_retries_keep_me",
      ),
    ]);
    const old = now - 400 * 86_400_000;
    const event = (at: number) =>
      JSON.stringify([{ seq: 1, from: null, to: "CREATED", event: "create", detail: null, at }]);
    const insert = (id: string, createdAt: number, updatedAt: number) =>
      env.DB.prepare(
        "INSERT INTO jobs (id, project_id, user_id, intent, status, created_at, updated_at, events) VALUES (?, 'default', 'api', 'x', 'SUCCEEDED', ?, ?, ?)",
      ).bind(id, createdAt, updatedAt, event(createdAt));
    const oldIds = Array.from({ length: JOBS_PER_RUN + 3 }, (_, n) => newJobId(old + n));
    const rows = oldIds.map((id, n) => insert(id, old + n, old + n));
    for (let n = 0; n < rows.length; n += 500) await env.DB.batch(rows.slice(n, n + 500));
    // Created long ago but still moving: its history is not past retention.
    const longRunning = newJobId(old + 5000);
    const recent = newJobId(now - 86_400_000);
    await env.DB.batch([
      insert(longRunning, old + 5000, now - 60_000),
      insert(recent, now - 86_400_000, now - 86_400_000),
    ]);
    const eventsOf = async (id: string) =>
      (
        await env.DB.prepare("SELECT json_array_length(events) AS n FROM jobs WHERE id = ?")
          .bind(id)
          .first<{ n: number }>()
      )?.n;

    // A minute past the hour: counters of past minutes only (this minute's stays).
    const offHour = await pruneHistory(env.DB, now + 60_000, DAYS);
    expect(offHour).toEqual({ eventsDeleted: 0, logsDeleted: 0, countersDeleted: 1 });
    const names = (await env.DB.prepare("SELECT name FROM counters").all<{ name: string }>()).results.map(
      (r) => r.name,
    );
    expect(names).not.toContain(`pair_failures:203.0.113.9:${minute - 5}`);
    expect(names).toContain(`pair_failures:203.0.113.9:${minute + 1}`);
    expect(names).toContain("queue_retries_keep_me");
    expect(await eventsOf(oldIds[0] as string)).toBe(1);

    // On the hour: one bounded batch, then the rest; recent history stays, and so do the rows.
    const withEvents = async () =>
      (await env.DB.prepare("SELECT COUNT(*) AS n FROM jobs WHERE events <> '[]'").first<{ n: number }>())?.n ?? 0;
    const holding = await withEvents();
    const first = await pruneHistory(env.DB, now, DAYS);
    expect(first.eventsDeleted).toBeGreaterThan(0);
    expect(holding - (await withEvents())).toBeLessThanOrEqual(JOBS_PER_RUN);
    expect(await eventsOf(oldIds.at(-1) as string)).toBe(1);
    let runs = 1;
    while ((await pruneHistory(env.DB, now, DAYS)).eventsDeleted > 0) runs += 1;
    expect(runs).toBeGreaterThan(1);
    for (const id of [oldIds[0], oldIds.at(-1)]) expect(await eventsOf(id as string)).toBe(0);
    const left = await env.DB.prepare(
      `SELECT COUNT(*) AS n FROM jobs WHERE id IN (SELECT value FROM json_each(?)) AND events <> '[]'`,
    )
      .bind(JSON.stringify(oldIds))
      .first<{ n: number }>();
    expect(left?.n).toBe(0);
    expect(
      (
        await env.DB.prepare("SELECT COUNT(*) AS n FROM jobs WHERE id IN (SELECT value FROM json_each(?))")
          .bind(JSON.stringify(oldIds))
          .first<{ n: number }>()
      )?.n,
    ).toBe(oldIds.length);
    expect(await eventsOf(longRunning)).toBe(1);
    expect(await eventsOf(recent)).toBe(1);
  });

  it("keeps a 20 MB log byte-for-byte through tail, search and the R2 write", async () => {
    const jobId = newJobId();
    await stub(jobId).create({ jobId, projectId: "default", intent: "check git status", userId: "42", chatId: null });
    const lineCount = (20 * 1024 * 1024) / 64;
    const digest = await runInDurableObject(stub(jobId), async (i: JobDO) => {
      const enc = new TextEncoder();
      const hash = new crypto.DigestStream("SHA-256");
      const writer = hash.getWriter();
      let seq = 0;
      let chunk = "";
      for (let n = 0; n < lineCount; n++) {
        // 64 bytes per line, with a little UTF-8 to keep byte counting honest
        chunk += `${`line ${String(n).padStart(8, "0")} é ${"x".repeat(46)}`.slice(0, 63).padEnd(63, "y")}\n`;
        if (chunk.length >= 60_000) {
          insides(i).logs.append({ attempt: 1, seq: seq++, stepId: "s1", stream: "stdout", data: chunk });
          await writer.write(enc.encode(chunk));
          chunk = "";
        }
      }
      if (chunk) {
        insides(i).logs.append({ attempt: 1, seq: seq++, stepId: "s1", stream: "stdout", data: chunk });
        await writer.write(enc.encode(chunk));
      }
      await writer.close();
      const expected = [...new Uint8Array(await hash.digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
      const tail = insides(i).logs.tail(2).split("\n");
      expect(tail).toHaveLength(2);
      expect(tail[1]).toContain(`line ${String(lineCount - 1).padStart(8, "0")}`);
      expect(insides(i).logs.search("line 00123456")).toHaveLength(1);
      const written = await putLogInR2(env.ARCHIVE, jobId, insides(i).logs);
      expect(written).toBeGreaterThanOrEqual(20 * 1024 * 1024);
      return expected;
    });
    const obj = await env.ARCHIVE.get(logKey(jobId));
    if (!obj) throw new Error("no archived log");
    const stored = await crypto.subtle.digest("SHA-256", await obj.arrayBuffer());
    const actual = [...new Uint8Array(stored)].map((b) => b.toString(16).padStart(2, "0")).join("");
    expect(actual).toBe(digest);
  });

  it("refuses artifact names that try to leave the job's folder", async () => {
    const store = new ArtifactStore(env.ARCHIVE);
    const jobId = newJobId();
    for (const name of ["../../x", "..", "a/b", ".hidden", "x\0y"]) {
      await expect(
        store.put(jobId, name, "data", { size: 4, sha256: "0".repeat(64), contentType: "text/plain" }),
      ).rejects.toThrow(/invalid artifact name/);
    }
    const res = await api(`/api/jobs/${jobId}/artifacts/..%2F..%2Fx`);
    expect(res.status).toBe(400);
    const { token } = await pairAgent("artifact-agent");
    const put = await api(`/agent/jobs/${jobId}/artifacts/..%2F..%2Fx`, {
      method: "PUT",
      token,
      body: "data",
      headers: { "X-Skynet-Attempt": "1", "X-Skynet-Lease": "x".repeat(32), "X-Skynet-Sha256": "0".repeat(64) },
    });
    expect(put.status).toBe(400);
    expect((await env.ARCHIVE.list({ prefix: `artifacts/jobs/${jobId}` })).objects).toHaveLength(0);
  });

  it("stores, lists, downloads and deletes an artifact with its sha256 checked", async () => {
    const store = new ArtifactStore(env.ARCHIVE);
    const jobId = newJobId();
    await stub(jobId).create({ jobId, projectId: "default", intent: "check git status", userId: "42", chatId: null });
    const body = "hello artifact\n";
    const sha = [...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body)))]
      .map((b) => b.toString(16).padStart(2, "0"))
      .join("");
    await expect(
      store.put(jobId, "r.txt", body, { size: 15, sha256: "0".repeat(64), contentType: "text/plain" }),
    ).rejects.toThrow();
    await store.put(jobId, "report.txt", body, { size: body.length, sha256: sha, contentType: "text/plain" });
    const listed = await (await api(`/api/jobs/${jobId}/artifacts`)).json<{
      artifacts: { name: string; size: number; url: string }[];
    }>();
    expect(listed.artifacts).toEqual([expect.objectContaining({ name: "report.txt", size: body.length })]);
    const download = await api(listed.artifacts[0]?.url ?? "");
    expect(download.status).toBe(200);
    expect(download.headers.get("Content-Disposition")).toBe('attachment; filename="report.txt"');
    expect(download.headers.get("X-Skynet-Sha256")).toBe(sha);
    expect(await download.text()).toBe(body);
    expect((await api(`/api/jobs/${jobId}/artifacts/report.txt`, { token: null })).status).toBe(401);
    expect(await (await api(`/api/jobs/${jobId}/artifacts`, { method: "DELETE" })).json()).toEqual({
      jobId,
      deleted: 1,
    });
  });
});

describe("metrics", () => {
  it("serves Prometheus text exposition behind the API token", async () => {
    expect((await api("/metrics", { token: null })).status).toBe(401);
    const res = await api("/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const families = new Map<string, string>();
    for (const line of text.trimEnd().split("\n")) {
      const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
      if (meta) {
        if (meta[1] === "TYPE") families.set(meta[2] ?? "", meta[3] ?? "");
        continue;
      }
      const sample =
        /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.e+-]+|\+Inf|NaN)$/.exec(
          line,
        );
      expect(sample, `not a valid sample line: ${line}`).not.toBeNull();
      const name = sample?.[1] ?? "";
      const family = name.replace(/_(bucket|sum|count|total)$/, "");
      expect(families.has(name) || families.has(family), `sample ${name} before its TYPE`).toBe(true);
    }
    expect(families.get("skynet_jobs")).toBe("gauge");
    expect(families.get("skynet_dispatch_latency_seconds")).toBe("histogram");
    expect(text).toMatch(/skynet_dispatch_latency_seconds_bucket\{le="\+Inf"\} \d+/);
    expect(text).toMatch(/skynet_jobs\{status="SUCCEEDED"\} \d+/);
    expect(text).toMatch(/skynet_agents_online \d+/);
  });
});
