// Queue consumers (dispatch with per-message ack/retry and backoff, dead letters), the seed's
// gateway endpoints, waiting for approval, audited ADMIN approvals, and the log API and stream.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { JobView } from "../protocol/index.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { retryDelaySeconds } from "../src/queue/dispatch-consumer.ts";
import { runQueue } from "./helpers/handlers.ts";
import { insides } from "./helpers/job-insides.ts";
import { api, json } from "./helpers/worker.ts";

const job = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));

async function plannedJob(intent: string): Promise<string> {
  const jobId = newJobId();
  await job(jobId).create({ jobId, projectId: "nobody-here", intent, userId: "42", chatId: null });
  await runDurableObjectAlarm(job(jobId));
  return jobId;
}

describe("queue consumers", () => {
  it("backs off min(10 s·2^n, 10 min)", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map(retryDelaySeconds)).toEqual([10, 20, 40, 80, 160, 320, 600, 600]);
  });

  it("acks each message: a dispatch, a duplicate and a malformed body", async () => {
    const jobId = await plannedJob("check git status");
    const result = await runQueue("skynet-dispatch", [
      { id: "m1", attempts: 1, body: { jobId, attempt: 1 } },
      { id: "m2", attempts: 1, body: { jobId, attempt: 1 } },
      { id: "m3", attempts: 1, body: { jobId: "../etc", attempt: "x" } },
    ]);
    expect(result.explicitAcks.sort()).toEqual(["m1", "m2", "m3"]);
    expect(result.retryMessages).toEqual([]);
    // No agent serves the project: the job waits QUEUED (assigned when one connects), not FAILED.
    expect((await job(jobId).get())?.status).toBe("QUEUED");
  });

  it("fails a dead-lettered job with a reason and counts it", async () => {
    const jobId = await plannedJob("check git status");
    const result = await runQueue("skynet-dispatch-dlq", [{ id: "d1", attempts: 6, body: { jobId, attempt: 1 } }]);
    expect(result.explicitAcks).toEqual(["d1"]);
    const failed = await job(jobId).get();
    expect(failed?.status).toBe("FAILED");
    expect(failed?.error).toMatch(/dispatch failed after retries/);
    const counter = await env.DB.prepare("SELECT value FROM counters WHERE name = 'dead_letters'").first<{
      value: number;
    }>();
    expect(counter?.value).toBeGreaterThanOrEqual(1);
  });
});

describe("gateway endpoints", () => {
  const spec = (jobId: string, risk = "READ_ONLY", action = "git_status") => ({
    executionSpec: {
      jobId,
      attempt: 1,
      provider: "openclaw",
      projectId: "nobody-here",
      timeoutS: 60,
      steps: [{ id: "s1", action, params: {}, risk, timeoutS: 60 }],
    },
  });

  it("accepts a valid spec, shows its status and cancels it", async () => {
    const jobId = newJobId();
    const res = await api("/execute", { method: "POST", json: spec(jobId) });
    expect(res.status).toBe(202);
    expect((await json<{ job: JobView }>(res)).job.status).toBe("QUEUED");
    const status = await json(await api(`/status/${jobId}`));
    expect(status).toMatchObject({ jobId, status: "queued", exitCode: null });
    expect(await json(await api(`/cancel/${jobId}`, { method: "POST" }))).toEqual({ jobId, status: "cancelled" });
    expect((await api(`/execute`, { method: "POST", json: spec(jobId) })).status).toBe(409);
  });

  it("refuses an understated risk, an unknown action, and no token", async () => {
    expect((await api("/execute", { method: "POST", json: spec(newJobId(), "READ_ONLY", "git_push") })).status).toBe(
      400,
    );
    expect((await api("/execute", { method: "POST", json: spec(newJobId(), "ADMIN", "sh") })).status).toBe(400);
    expect((await api("/execute", { method: "POST", json: spec(newJobId()), token: null })).status).toBe(401);
    expect((await api("/status/job_0000000000notthere")).status).toBe(404);
  });
});

describe("approval", () => {
  it("waits for approval and audits an ADMIN approval", async () => {
    const jobId = await plannedJob("push to origin");
    const waiting = await json<{ approved: boolean; job: JobView }>(
      await api(`/api/jobs/${jobId}/wait-approval?timeoutS=0`),
    );
    expect(waiting.approved).toBe(false);
    expect(waiting.job.status).toBe("PLANNED");
    expect(waiting.job.risk).toBe("ADMIN");
    expect((await api(`/api/jobs/${jobId}/approve`, { method: "POST" })).status).toBe(200);
    const after = await json<{ approved: boolean }>(await api(`/api/jobs/${jobId}/wait-approval?timeoutS=1`));
    expect(after.approved).toBe(true);
    await expect
      .poll(async () =>
        (
          await env.DB.prepare("SELECT action FROM audit_log WHERE job_id = ?").bind(jobId).all<{ action: string }>()
        ).results.map((r) => r.action),
      )
      .toContain("approve_admin_job");
  });
});

describe("logs", () => {
  it("serves tail and grep, and streams the live log as server-sent events until the job ends", async () => {
    const jobId = await plannedJob("check git status");
    await runInDurableObject(job(jobId), (i: JobDO) => {
      insides(i).logs.append({ attempt: 1, seq: 0, stepId: "s1", stream: "stdout", data: "alpha\nbeta <b>\n" });
      insides(i).logs.append({ attempt: 1, seq: 1, stepId: "s1", stream: "stdout", data: "gamma\n" });
    });
    expect((await json<{ lines: string[] }>(await api(`/api/jobs/${jobId}/logs?tail=2`))).lines).toEqual([
      "beta <b>",
      "gamma",
    ]);
    expect((await json<{ lines: string[] }>(await api(`/api/jobs/${jobId}/logs?grep=ALP`))).lines).toEqual(["alpha"]);
    expect((await api(`/api/jobs/${jobId}/logs?tail=0`)).status).toBe(400);
    const res = await api(`/api/jobs/${jobId}/logs/stream`);
    expect(res.headers.get("Content-Type")).toMatch(/text\/event-stream/);
    const reader = res.body?.getReader();
    if (!reader) throw new Error("no body");
    const dec = new TextDecoder();
    let text = "";
    while (!text.includes("gamma")) text += dec.decode((await reader.read()).value);
    await runInDurableObject(job(jobId), (i: JobDO) => {
      insides(i).logs.append({ attempt: 1, seq: 2, stepId: "s1", stream: "stdout", data: "delta\n" });
    });
    await job(jobId).cancel({ id: "42", isAdmin: false }, "done watching");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value);
    }
    expect(text).toContain("event: log");
    expect(text).toContain("data: alpha");
    expect(text).toContain("data: delta");
    expect(text).toMatch(/event: end\ndata: \{"status":"CANCELLED"\}/);
    const whole = await api(`/api/jobs/${jobId}/log`);
    expect(await whole.text()).toBe("alpha\nbeta <b>\ngamma\ndelta\n");
  });
});
