// A job's final log on its ledger row when small (migration 0015, archive-log.ts): no R2 put for
// a log of at most LEDGER_LOG_MAX_BYTES UTF-8 bytes, the same bytes from GET /api/jobs/:id/log
// whichever place holds it (and after the JobDO's storage is gone), nothing else reading the
// column, and the log emptied after LOG_RETENTION_DAYS as R2's lifecycle rules expire the others.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { archiveLog, LEDGER_LOG_MAX_BYTES } from "../src/jobs/archive-log.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import type { JobState } from "../src/jobs/job-state.ts";
import { LogBuffer } from "../src/jobs/log-buffer.ts";
import { getDb, getJob, listJobsQuery } from "../src/ledger/store.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { archiveApiRoutes } from "../src/routes/archive.ts";
import { LOGS_CURSOR, pruneHistory } from "../src/sentinel/retention.ts";
import { issueLoginLink } from "../src/web/session.ts";
import { archivedLog } from "./helpers/archived-log.ts";
import { jobFinished } from "./helpers/frames.ts";
import { insides, patchEnv } from "./helpers/job-insides.ts";
import { jobStubOf } from "./helpers/offers.ts";
import { cookieOf, web } from "./helpers/web.ts";
import { API_TOKEN, api, pairAgent, TestAgent } from "./helpers/worker.ts";

vi.setConfig({ testTimeout: 30_000 });
const poll = <T>(fn: () => Promise<T>) => expect.poll(fn, { timeout: 10_000, interval: 50 });
const DAY = 86_400_000;
const bytesOf = (text: string) => new TextEncoder().encode(text);

/** A ledger row for `id`, as the job's first ledger write leaves it (no log yet). */
function insertJob(id: string, createdAt: number, updatedAt: number, log: string | null = null) {
  return env.DB.prepare(
    `INSERT INTO jobs (id, project_id, user_id, intent, status, created_at, updated_at, events, log)
     VALUES (?, 'default', 'api', 'x', 'SUCCEEDED', ?, ?, '[{"seq":1,"from":null,"to":"CREATED","event":"create","detail":null,"at":0}]', ?)`,
  ).bind(id, createdAt, updatedAt, log);
}

/** Archives `chunks` as job `jobId`'s whole log, from a log buffer in a Durable Object's storage. */
async function archive(jobId: string, chunks: string[]): Promise<string> {
  return runInDurableObject(env.JOB.getByName(`buffer-${jobId}`), async (_i: JobDO, state) => {
    const logs = new LogBuffer(state.storage.sql);
    chunks.forEach((data, seq) => {
      logs.append({ attempt: 1, seq, stepId: "s1", stream: "stdout", data });
    });
    return archiveLog(env, jobId, logs);
  });
}

/** A web console session of Telegram user `userId` (signed in through the bot's one-time link). */
async function userSession(userId: string): Promise<string> {
  const { code } = await issueLoginLink(env, userId);
  return cookieOf(await web("/web/link", { form: { code } }));
}

/** The log download as the archive routes answer it, before the app's output redaction. */
const routeLog = (jobId: string) =>
  archiveApiRoutes.request(`/jobs/${jobId}/log`, { headers: { Authorization: `Bearer ${API_TOKEN}` } }, env);

describe("a job whose final log is small", () => {
  it("has it written by the same statement as its final ledger row: no statement, row or round trip of its own", async () => {
    const { agentId, token } = await pairAgent("ledger-log-fold");
    const agent = await TestAgent.connect(token, { workspaces: ["ledger-log-fold"] });
    try {
      const jobId = newJobId();
      const stub = jobStubOf(jobId);
      await stub.create({
        jobId,
        projectId: "ledger-log-fold",
        intent: "check git status",
        userId: "42",
        chatId: null,
      });
      const offer = await agent.nextOf("job_offer", (m) => m.jobId === jobId, 10_000);
      const fence = { jobId, attempt: offer.attempt, leaseToken: offer.leaseToken };
      // The create's ledger write is done before the end is watched.
      await poll(async () => (await getJob(getDb(env.DB), jobId))?.status).toBe("QUEUED");
      const sqls: string[] = [];
      let calls = 0;
      const restore = await patchEnv(jobId, (real) => ({
        DB: new Proxy(real.DB, {
          get(t, prop) {
            const value = Reflect.get(t, prop);
            if (typeof value !== "function") return value;
            if (prop === "prepare")
              return (query: string) => {
                sqls.push(query);
                return t.prepare(query);
              };
            if (prop === "batch" || prop === "exec")
              return (...args: unknown[]) => {
                calls += 1;
                return (value as (...a: unknown[]) => unknown).apply(t, args);
              };
            return value.bind(t);
          },
        }),
      }));
      try {
        const data = "nothing to commit, working tree clean\n";
        const log = { type: "log" as const, ...fence, stepId: "s1", seq: 0, stream: "stdout" as const, data };
        expect(
          await stub.agentBatch(agentId, [{ type: "job_accept", ...fence }, log, jobFinished(fence)]),
        ).toMatchObject({ ok: true });
        await poll(async () => (await stub.opCounts())["outbox.archive_log_ledger"]).toBe(1);
      } finally {
        await restore();
      }
      const whole = (await stub.readLogChunks(null))?.text ?? "";
      expect(await archivedLog(jobId)).toEqual({ ledger: whole, r2: null });
      // The job's end reached D1 as one batch (its metrics and its row, events and log together).
      expect(sqls.filter((q) => /\bjobs\b/i.test(q) && /\blog\b/i.test(q))).toHaveLength(1);
      expect(sqls.some((q) => /^\s*update\s+jobs\s+set\s+log/i.test(q))).toBe(false);
      expect(calls).toBe(1);
    } finally {
      agent.close();
    }
  });

  it("keeps it on its ledger row, not in R2, and serves it byte-exact before and after its purge", async () => {
    const { agentId, token } = await pairAgent("ledger-log");
    const agent = await TestAgent.connect(token, { workspaces: ["ledger-log"] });
    try {
      const jobId = newJobId();
      const stub = jobStubOf(jobId);
      await stub.create({ jobId, projectId: "ledger-log", intent: "check git status", userId: "42", chatId: null });
      const offer = await agent.nextOf("job_offer", (m) => m.jobId === jobId, 10_000);
      const fence = { jobId, attempt: offer.attempt, leaseToken: offer.leaseToken };
      const data = "On branch main\nÜnïcödé ✓ 日本語 — 🚀\r\nnothing to commit\n";
      const log = { type: "log" as const, ...fence, stepId: "s1", seq: 0, stream: "stdout" as const, data };
      expect(await stub.agentBatch(agentId, [{ type: "job_accept", ...fence }, log, jobFinished(fence)])).toMatchObject(
        { ok: true },
      );
      await poll(async () => (await stub.opCounts())["outbox.archive_log_ledger"]).toBe(1);
      const whole = (await stub.readLogChunks(null))?.text ?? "";
      expect(whole).toContain(data);
      expect(await stub.opCounts()).not.toHaveProperty("outbox.archive_log_r2");

      // Where it went: the row, and no R2 object.
      const stored = await archivedLog(jobId);
      expect(stored).toEqual({ ledger: whole, r2: null });

      const served = async () => {
        const res = await api(`/api/jobs/${jobId}/log`);
        expect(res.status).toBe(200);
        expect(res.headers.get("X-Skynet-Log")).toBe("archived");
        return new Uint8Array(await res.arrayBuffer());
      };
      expect(await served()).toEqual(bytesOf(whole));
      // The route's own length is the bytes', not the characters' (the output redaction drops it).
      const direct = await routeLog(jobId);
      expect(direct.headers.get("Content-Length")).toBe(String(bytesOf(whole).length));
      expect(bytesOf(whole).length).toBeGreaterThan(whole.length);

      // Evicted, then purged past JOB_STATE_RETENTION_DAYS: the live record is gone, the log is not.
      await runInDurableObject(stub, (i: JobDO) => {
        insides(i).restart();
        const s = insides(i).load() as JobState;
        s.finishedAt = Date.now() - 8 * DAY;
        insides(i).save(s);
      });
      expect(await runDurableObjectAlarm(stub)).toBe(true);
      expect(await stub.readLogChunks(null)).toBeNull();
      expect(await served()).toEqual(bytesOf(whole));
      // The console's download too, for its owner (the ledger row says whose it is), not for another user.
      const download = await web(`/web/jobs/${jobId}/log`, { cookie: await userSession("42") });
      expect(download.status).toBe(200);
      expect(download.headers.get("Content-Disposition")).toBe(`attachment; filename="${jobId}.log"`);
      expect(new Uint8Array(await download.arrayBuffer())).toEqual(bytesOf(whole));
      expect((await web(`/web/jobs/${jobId}/log`, { cookie: await userSession("44") })).status).toBe(404);
    } finally {
      agent.close();
    }
  });
});

describe("the ledger log's limit", () => {
  const MAX = LEDGER_LOG_MAX_BYTES;

  it("counts UTF-8 bytes: exactly at the limit goes on the row, a byte over goes to R2", async () => {
    const rocket = "🚀"; // 4 bytes, 2 UTF-16 units
    const cases = [
      // [chunks, where]: a multi-byte character ending exactly at the limit, or one byte past it
      { chunks: ["a".repeat(MAX - 10), `${"b".repeat(6)}${rocket}`], where: "ledger" },
      { chunks: ["a".repeat(MAX - 9), `${"b".repeat(6)}${rocket}`], where: "r2" },
      // fewer characters than the limit, more bytes
      { chunks: ["é".repeat(MAX / 2), "é"], where: "r2" },
      { chunks: ["é".repeat(MAX / 2)], where: "ledger" },
      { chunks: ["x".repeat(MAX * 4)], where: "r2" },
      { chunks: [], where: "ledger" },
    ];
    for (const { chunks, where } of cases) {
      const jobId = newJobId();
      await insertJob(jobId, Date.now(), Date.now()).run();
      const text = chunks.join("");
      expect(await archive(jobId, chunks)).toBe(where === "ledger" ? "archive_log_ledger" : "archive_log_r2");
      const stored = await archivedLog(jobId);
      if (where === "ledger") expect(stored).toEqual({ ledger: text, r2: null });
      else expect(stored).toEqual({ ledger: null, r2: bytesOf(text) });
      const res = await api(`/api/jobs/${jobId}/log`);
      expect(res.headers.get("X-Skynet-Log")).toBe("archived");
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(bytesOf(text));
    }
  });

  it("is byte-exact for text that is not plain: NUL, CR, a lone surrogate (U+FFFD), a pair split over chunks", async () => {
    const jobId = newJobId();
    await insertJob(jobId, Date.now(), Date.now()).run();
    const chunks = ["nul:\u0000:end\r\n", "lone:\ud800:end\n", "pair split? \ud83d", "\ude80 done\n"];
    expect(await archive(jobId, chunks)).toBe("archive_log_ledger");
    const res = await routeLog(jobId);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(bytesOf(chunks.join("")));
  });

  it("is idempotent: archived twice, the same text in the same place", async () => {
    for (const chunks of [["small ✓\n"], ["y".repeat(MAX + 1)]]) {
      const jobId = newJobId();
      await insertJob(jobId, Date.now(), Date.now()).run();
      const first = await archive(jobId, chunks);
      const once = await archivedLog(jobId);
      expect(await archive(jobId, chunks)).toBe(first);
      expect(await archivedLog(jobId)).toEqual(once);
      expect(once.ledger !== null || once.r2 !== null).toBe(true);
    }
  });

  it("puts the log in R2 when the job has no ledger row yet, and never creates the row", async () => {
    const jobId = newJobId();
    expect(await archive(jobId, ["early\n"])).toBe("archive_log_r2_no_row");
    expect(await archivedLog(jobId)).toEqual({ ledger: null, r2: bytesOf("early\n") });
    expect(await env.DB.prepare("SELECT id FROM jobs WHERE id = ?").bind(jobId).first()).toBeNull();
  });
});

describe("readers of the jobs table", () => {
  it("do not read the log column: lists and a job's row select around it", async () => {
    const jobId = newJobId();
    await insertJob(jobId, Date.now(), Date.now(), "secret-free but long".repeat(100)).run();
    const listed = listJobsQuery(getDb(env.DB), {}).toSQL().sql;
    expect(listed).toContain('"intent"');
    expect(listed).not.toMatch(/"log"/);
    const row = await getJob(getDb(env.DB), jobId);
    expect(row?.id).toBe(jobId);
    expect(row).not.toHaveProperty("log");
  });
});

describe("ledger log retention", () => {
  it("empties logs on rows past LOG_RETENTION_DAYS hourly, waiting for a job that ended late", async () => {
    const now = Date.UTC(2031, 5, 1, 9, 0, 0); // on the hour
    await env.DB.prepare("DELETE FROM counters WHERE name = ?").bind(LOGS_CURSOR).run();
    const early = newJobId(now - 45 * DAY);
    const late = newJobId(now - 40 * DAY); // created before the cutoff, ended 10 days ago
    const old = newJobId(now - 35 * DAY);
    const recent = newJobId(now - 5 * DAY);
    await env.DB.batch([
      insertJob(early, now - 45 * DAY, now - 45 * DAY, "early"),
      insertJob(late, now - 40 * DAY, now - 10 * DAY, "late"),
      insertJob(old, now - 35 * DAY, now - 35 * DAY, "old"),
      insertJob(recent, now - 5 * DAY, now - 5 * DAY, "recent"),
    ]);
    const logOf = async (id: string) =>
      (await env.DB.prepare("SELECT log FROM jobs WHERE id = ?").bind(id).first<{ log: string | null }>())?.log;
    const eventsOf = async (id: string) =>
      (
        await env.DB.prepare("SELECT json_array_length(events) AS n FROM jobs WHERE id = ?")
          .bind(id)
          .first<{ n: number }>()
      )?.n;
    const days = { history: 365, logs: 30 };

    // Off the hour: nothing.
    expect((await pruneHistory(env.DB, now + 60_000, days)).logsDeleted).toBe(0);
    expect(await logOf(early)).toBe("early");

    const first = await pruneHistory(env.DB, now, days);
    expect(first.logsDeleted).toBeGreaterThanOrEqual(2);
    expect(await logOf(early)).toBeNull();
    expect(await logOf(old)).toBeNull();
    expect(await logOf(late)).toBe("late");
    expect(await logOf(recent)).toBe("recent");
    // Only the log: the events (HISTORY_RETENTION_DAYS) and the rows stay.
    expect(await eventsOf(early)).toBe(1);
    // Once the late job is past the cutoff too, a later run empties it: the walk waited for it.
    await pruneHistory(env.DB, now + 3 * DAY, days);
    expect(await logOf(late)).toBe("late");
    await pruneHistory(env.DB, now + 21 * DAY, days);
    expect(await logOf(late)).toBeNull();
    expect(await logOf(recent)).toBe("recent");

    // A job whose log is gone: the download says so (no live record, nothing in R2).
    const res = await api(`/api/jobs/${early}/log`);
    expect(res.status).toBe(404);
    expect(await res.text()).toContain("retention");
  });
});
