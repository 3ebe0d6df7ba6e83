// GET /api/jobs/:id/wait and /wait-approval: the job's object answers the wait at the commit that
// ends it (one request to the object per wait), not by being re-read on a timer.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { JobView } from "../protocol/index.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { issueLoginLink } from "../src/web/session.ts";
import { cookieOf, web } from "./helpers/web.ts";
import { api, json } from "./helpers/worker.ts";

const job = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));

/** A job planned ADMIN ("push to origin"): it stays PLANNED until someone decides. */
async function plannedAdminJob(): Promise<string> {
  const jobId = newJobId();
  await job(jobId).create({ jobId, projectId: "nobody-here", intent: "push to origin", userId: "42", chatId: null });
  await runDurableObjectAlarm(job(jobId));
  expect((await job(jobId).get())?.status).toBe("PLANNED");
  return jobId;
}

const poll = <T>(fn: () => Promise<T>) => expect.poll(fn, { timeout: 10_000, interval: 50 });
const waits = async (jobId: string) => (await job(jobId).opCounts())["rpc.waitWhile"] ?? 0;

describe("waiting on a job", () => {
  it("answers a wait for approval at the approval, having asked the job's object once", async () => {
    const jobId = await plannedAdminJob();
    const getsBefore = (await job(jobId).opCounts())["rpc.get"] ?? 0;
    let answered = false;
    const pending = api(`/api/jobs/${jobId}/wait-approval?timeoutS=120`).then(async (res) => {
      answered = true;
      return { status: res.status, body: await json<{ approved: boolean; job: JobView }>(res) };
    });
    await poll(() => waits(jobId)).toBe(1);
    // Still waiting: nothing has changed.
    await new Promise((r) => setTimeout(r, 300));
    expect(answered).toBe(false);

    expect((await api(`/api/jobs/${jobId}/approve`, { method: "POST" })).status).toBe(200);
    const { status, body } = await pending;
    expect(status).toBe(200);
    expect(body.approved).toBe(true);
    expect(body.job.status).toBe("QUEUED");
    // One wait call, and no re-reading of the job while it waited.
    expect(await waits(jobId)).toBe(1);
    expect((await job(jobId).opCounts())["rpc.get"] ?? 0).toBe(getsBefore);
  });

  it("answers /wait with the final job when it is cancelled meanwhile", async () => {
    const jobId = await plannedAdminJob();
    const pending = api(`/api/jobs/${jobId}/wait?timeoutS=120`);
    await poll(() => waits(jobId)).toBe(1);
    expect((await api(`/api/jobs/${jobId}/cancel`, { method: "POST", json: { reason: "not now" } })).status).toBe(200);
    const res = await pending;
    expect(res.status).toBe(200);
    expect((await json<JobView>(res)).status).toBe("CANCELLED");
    expect(await waits(jobId)).toBe(1);
  });

  it("answers with the job as it is when the time runs out, and at once when it is already past", async () => {
    const jobId = await plannedAdminJob();
    const res = await api(`/api/jobs/${jobId}/wait?timeoutS=1`);
    expect(res.status).toBe(200);
    expect((await json<JobView>(res)).status).toBe("PLANNED");

    await api(`/api/jobs/${jobId}/deny`, { method: "POST", json: { reason: "no" } });
    const final = await api(`/api/jobs/${jobId}/wait?timeoutS=300`);
    expect((await json<JobView>(final)).status).toBe("CANCELLED");
  });

  it("with ?while=, answers when the job leaves those statuses rather than when it ends", async () => {
    const jobId = await plannedAdminJob();
    const pending = api(`/api/jobs/${jobId}/wait?timeoutS=120&while=CREATED,PLANNED`);
    await poll(() => waits(jobId)).toBe(1);
    expect((await api(`/api/jobs/${jobId}/approve`, { method: "POST" })).status).toBe(200);
    // QUEUED is not final: a wait without ?while= would still be waiting (no agent serves it).
    const res = await pending;
    expect(res.status).toBe(200);
    expect((await json<JobView>(res)).status).toBe("QUEUED");
  });

  it("refuses a ?while= that names no status, and ?while= on /wait-approval", async () => {
    const jobId = await plannedAdminJob();
    for (const bad of ["BOGUS", "QUEUED,", "", "queued"]) {
      const res = await api(`/api/jobs/${jobId}/wait?timeoutS=1&while=${bad}`);
      expect(res.status, bad).toBe(400);
    }
    const approval = await api(`/api/jobs/${jobId}/wait-approval?timeoutS=1&while=PLANNED`);
    expect(approval.status).toBe(400);
    expect(JSON.stringify(await json(approval))).toContain("while");
    expect(await waits(jobId)).toBe(0);
  });

  it("answers 404 for a job that does not exist, and refuses a timeout over 300 s", async () => {
    const missing = await api(`/api/jobs/${newJobId()}/wait?timeoutS=5`);
    expect(missing.status).toBe(404);
    const jobId = await plannedAdminJob();
    expect((await api(`/api/jobs/${jobId}/wait?timeoutS=301`)).status).toBe(400);
    expect(await waits(jobId)).toBe(0);
  });

  it("a wait outlives a restart of the job's object: asked again, it still answers at the change", async () => {
    const jobId = await plannedAdminJob();
    const pending = api(`/api/jobs/${jobId}/wait?timeoutS=120`);
    await poll(() => waits(jobId)).toBe(1);
    // The object is reset (as a deploy or an eviction would): the pending call fails over to a new one.
    await runInDurableObject(job(jobId), (_instance: JobDO, state) => {
      state.abort("reset by the test");
    }).catch(() => undefined);
    // The new instance counts its own calls: the wait asked again is its first.
    await poll(() => waits(jobId)).toBe(1);
    expect((await api(`/api/jobs/${jobId}/cancel`, { method: "POST", json: { reason: "later" } })).status).toBe(200);
    const res = await pending;
    expect(res.status).toBe(200);
    expect((await json<JobView>(res)).status).toBe("CANCELLED");
  });

  it("the console's job page watch (.json?while=) answers at the change, only for who may see the job", async () => {
    const jobId = await plannedAdminJob(); // userId 42
    const cookieOfUser = async (id: string) =>
      cookieOf(await web("/web/link", { form: { code: (await issueLoginLink(env, id)).code } }));
    const owner = await cookieOfUser("42");
    const stranger = await cookieOfUser("44"); // not the owner, not an admin (43 is, in the tests)
    expect((await web(`/web/jobs/${jobId}.json?while=PLANNED`, { cookie: stranger })).status).toBe(404);
    expect((await web(`/web/jobs/${jobId}.json?while=NOPE`, { cookie: owner })).status).toBe(400);
    expect(await waits(jobId)).toBe(0);

    const pending = web(`/web/jobs/${jobId}.json?while=PLANNED`, { cookie: owner });
    await poll(() => waits(jobId)).toBe(1);
    expect((await api(`/api/jobs/${jobId}/cancel`, { method: "POST", json: { reason: "not now" } })).status).toBe(200);
    const res = await pending;
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ id: jobId, status: "CANCELLED" });
  });
});
