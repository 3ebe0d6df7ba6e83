import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { JobView } from "../protocol/index.ts";
import { api, countLedgerJobs, json, typedClient } from "./helpers/worker.ts";

const client = typedClient();

type ErrorBody = { error: { code: string; message: string } };

async function expectError(res: Response, status: number, code: string): Promise<string> {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toContain("application/json");
  const body = await json<ErrorBody>(res);
  expect(body.error.code).toBe(code);
  expect(body.error.message.length).toBeGreaterThan(0);
  return body.error.message;
}

describe("JSON API input validation", () => {
  it("refuses a request without a bearer token and creates nothing", async () => {
    const before = await countLedgerJobs();
    await expectError(
      await api("/api/tasks", { method: "POST", json: { intent: "check git status" }, token: null }),
      401,
      "unauthorized",
    );
    await expectError(
      await api("/api/tasks", { method: "POST", json: { intent: "check git status" }, token: "wrong" }),
      401,
      "unauthorized",
    );
    expect(await countLedgerJobs()).toBe(before);
  });

  it("refuses empty, oversized and malformed task bodies with 400 and creates nothing", async () => {
    const before = await countLedgerJobs();
    expect(
      await expectError(await api("/api/tasks", { method: "POST", json: { intent: "   " } }), 400, "bad_request"),
    ).toContain("intent");
    expect(
      await expectError(
        await api("/api/tasks", { method: "POST", json: { intent: "x".repeat(2001) } }),
        400,
        "bad_request",
      ),
    ).toContain("2000");
    expect(
      await expectError(
        await api("/api/tasks", { method: "POST", body: "{not json", headers: { "Content-Type": "application/json" } }),
        400,
        "bad_request",
      ),
    ).toContain("JSON");
    await expectError(
      await api("/api/tasks", { method: "POST", json: { intent: "ok", extra: 1 } }),
      400,
      "bad_request",
    );
    await expectError(
      await api("/api/tasks", { method: "POST", json: { intent: "ok", projectId: "../etc" } }),
      400,
      "bad_request",
    );
    expect(await countLedgerJobs()).toBe(before);
  });

  it("answers 404 for an unknown job and 400 for a malformed job id", async () => {
    await expectError(await api("/api/jobs/job_0000000000000000"), 404, "not_found");
    await expectError(await api("/api/jobs/not-a-job"), 400, "bad_request");
    await expectError(await api("/api/jobs/job_0000000000000000/approve", { method: "POST" }), 404, "not_found");
    await expectError(await api("/api/nope"), 404, "not_found");
  });

  it("refuses a bad list query and a forged cursor", async () => {
    await expectError(await api("/api/jobs?status=DONE"), 400, "bad_request");
    await expectError(await api("/api/jobs?limit=1000"), 400, "bad_request");
    await expectError(await api("/api/jobs?cursor=%%%garbage"), 400, "bad_request");
  });
});

describe("hostile bodies", () => {
  it("refuses oversized, non-object and extra-field bodies without creating anything", async () => {
    const before = await countLedgerJobs();
    const huge = await api("/api/tasks", {
      method: "POST",
      body: "x".repeat(300 * 1024),
      headers: { "Content-Type": "application/json" },
    });
    expect(huge.status).toBe(413);
    for (const body of [
      "[]",
      "null",
      '"check git status"',
      '{"intent":"x","__proto__":{"admin":true}}',
      '{"intent":"x","projectId":"../.."}',
    ]) {
      const res = await api("/api/tasks", { method: "POST", body, headers: { "Content-Type": "application/json" } });
      expect(res.status, body).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("bad_request");
    }
    expect((await api("/api/jobs?limit=5&extra=1")).status).toBe(400);
    expect(await countLedgerJobs()).toBe(before);
  });
});

describe("task submission", () => {
  it("creates a job and, when the rules read the task whole, plans and queues it before answering", async () => {
    const res = await client.api.tasks.$post({ json: { intent: "check git status" } });
    expect(res.status).toBe(202);
    const created = await res.json();
    expect(created.status).toBe("QUEUED");
    const job: JobView = await (await client.api.jobs[":id"].$get({ param: { id: created.jobId } })).json();
    expect(job.plan?.proposedSteps.map((s) => s.action)).toEqual(["git_status"]);
    expect(job.risk).toBe("READ_ONLY");
    expect(job.status).toBe("QUEUED"); // auto-approved and dispatched
    expect(job.decidedBy).toBe("auto");
  });

  it("lists jobs newest first with cursor pagination", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await (await client.api.tasks.$post({ json: { intent: `list files ${i}` } })).json();
      ids.push(r.jobId);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await client.api.jobs.$get({ query: { limit: "2", ...(cursor ? { cursor } : {}) } });
      const page = await res.json();
      expect(page.jobs.length).toBeLessThanOrEqual(2);
      seen.push(...page.jobs.map((j) => j.id));
      cursor = page.nextCursor;
    } while (cursor);
    const mine = seen.filter((id) => ids.includes(id));
    expect(mine).toEqual([...ids].reverse());
    expect(new Set(seen).size).toBe(seen.length);
  });
});

describe("health", () => {
  it("reports D1, R2, the registry and agents online, and answers 503 when a dependency fails", async () => {
    const { default: worker } = await import("../src/index.ts");
    const { createExecutionContext } = await import("cloudflare:test");
    const ok = await worker.fetch(new Request("https://skynet.test/health"), env, createExecutionContext());
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({
      ok: true,
      checks: { d1: { ok: true }, r2: { ok: true }, registry: { ok: true } },
    });
    // A D1 that refuses every query, as during an outage.
    const brokenDb = {
      prepare: () => {
        throw new Error("D1_ERROR: database unavailable");
      },
    } as unknown as D1Database;
    const down = await worker.fetch(
      new Request("https://skynet.test/health"),
      { ...env, DB: brokenDb },
      createExecutionContext(),
    );
    expect(down.status).toBe(503);
    expect(await down.json()).toMatchObject({
      ok: false,
      checks: { d1: { ok: false, error: "D1_ERROR: database unavailable" } },
    });
  });
});
