// Decisions not tested before: /deny from the API and from Telegram, and a cancel racing planning
// and approval. Real Worker, real JobDOs, real D1; Telegram through the Bot API stand-in.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { JobDO } from "../src/jobs/job-do.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { insides } from "./helpers/job-insides.ts";
import { lastJobPlanned, message, post, TelegramScope, textOf } from "./helpers/telegram.ts";
import { api, json, ledgerStatuses } from "./helpers/worker.ts";

const USER = { id: 49, is_bot: false, first_name: "Dana" };
const tg = new TelegramScope([USER.id], "d-");
const job = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));

beforeEach(async () => {
  await tg.skip();
});

/** A WRITE job waiting for approval (planned by the rule planner in its alarm). */
async function plannedJob(intent = "create a new file deny.txt with no"): Promise<string> {
  const res = await api("/api/tasks", { method: "POST", json: { intent, projectId: "decide" } });
  expect(res.status).toBe(202);
  const { jobId } = await json<{ jobId: string }>(res);
  await runDurableObjectAlarm(job(jobId));
  expect((await job(jobId).get())?.status).toBe("PLANNED");
  return jobId;
}

const events = ledgerStatuses;

describe("/deny", () => {
  it("from the API: CANCELLED with the reason, nothing dispatched, a second deny refused", async () => {
    const jobId = await plannedJob();
    const res = await api(`/api/jobs/${jobId}/deny`, { method: "POST", json: { reason: "not today" } });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ id: jobId, status: "CANCELLED", error: "denied by api: not today" });
    expect(await job(jobId).get()).toMatchObject({ status: "CANCELLED", attempt: 0, decidedBy: "api" });
    await expect.poll(() => events(jobId)).toEqual(["CREATED", "PLANNED", "CANCELLED"]);
    const again = await api(`/api/jobs/${jobId}/deny`, { method: "POST", json: {} });
    expect(again.status).toBe(409);
    const approve = await api(`/api/jobs/${jobId}/approve`, { method: "POST", json: {} });
    expect(approve.status).toBe(409);
    expect((await job(jobId).get())?.status).toBe("CANCELLED");
  });

  it("from Telegram: the requester denies, the job is CANCELLED and the reply says so", async () => {
    await post(message(USER, "/task create a new file tg-deny.txt with no"));
    const jobId = await lastJobPlanned(USER.id);
    expect((await job(jobId).get())?.status).toBe("PLANNED");
    await tg.skip();
    await post(message(USER, `/deny ${jobId}`));
    const reply = await tg.waitCall((c) => c.method === "sendMessage");
    expect(textOf(reply)).toBe("✖️ Denied; nothing will run.");
    expect(await job(jobId).get()).toMatchObject({ status: "CANCELLED", attempt: 0, decidedBy: String(USER.id) });
    expect((await job(jobId).get())?.error).toBe(`denied by ${USER.id}`);
    await tg.skip();
    await post(message(USER, `/deny ${jobId}`));
    const late = await tg.waitCall((c) => c.method === "sendMessage");
    expect(textOf(late)).toBe("Too late: job is CANCELLED, not waiting for approval.");
  });

  it("from Telegram, by someone else: refused, the job still waits", async () => {
    const jobId = await plannedJob();
    await post(message(USER, `/deny ${jobId}`)); // the job was made through the API by user 42
    const reply = await tg.waitCall((c) => c.method === "sendMessage");
    // Someone else is told what a job that does not exist gets: its existence is not revealed.
    expect(textOf(reply)).toBe("I don't know that job.");
    expect((await job(jobId).get())?.status).toBe("PLANNED");
  });
});

/** A job left to its planning alarm (a task the rules read whole is otherwise planned at once). */
const raceInput = (jobId: string) => ({
  jobId,
  projectId: "race",
  intent: "check git status",
  userId: "42",
  chatId: null,
});

describe("cancel racing", () => {
  it("planning: a job cancelled before its planning alarm ran is never planned", async () => {
    const jobId = newJobId();
    await runInDurableObject(job(jobId), (i: JobDO) => insides(i).createUnplanned(raceInput(jobId)));
    const res = await job(jobId).cancel({ id: "42", isAdmin: false }, "changed my mind");
    expect(res.ok && res.value.status).toBe("CANCELLED");
    await runDurableObjectAlarm(job(jobId));
    expect(await job(jobId).get()).toMatchObject({ status: "CANCELLED", plan: null, attempt: 0 });
    await expect.poll(() => events(jobId)).toEqual(["CREATED", "CANCELLED"]);
  });

  it("planning: a cancel arriving while the planner is working wins over the plan it returns", async () => {
    const jobId = newJobId();
    await runInDurableObject(job(jobId), async (i: JobDO) => {
      await insides(i).createUnplanned(raceInput(jobId));
      const s = insides(i).load();
      if (!s) throw new Error("no state");
      const planning = insides(i).plan(s); // suspends at the planner call
      const res = await i.cancel({ id: "42", isAdmin: false }, "while planning");
      expect(res.ok && res.value.status).toBe("CANCELLED");
      await planning;
    });
    expect(await job(jobId).get()).toMatchObject({
      status: "CANCELLED",
      plan: null,
      error: "cancelled by 42: while planning",
    });
    await expect.poll(() => events(jobId)).toEqual(["CREATED", "CANCELLED"]);
  });

  it("approval: cancel first, then the approval is refused and nothing is queued", async () => {
    const jobId = await plannedJob();
    expect((await api(`/api/jobs/${jobId}/cancel`, { method: "POST", json: {} })).status).toBe(200);
    const approve = await api(`/api/jobs/${jobId}/approve`, { method: "POST", json: {} });
    expect(approve.status).toBe(409);
    expect(await job(jobId).get()).toMatchObject({ status: "CANCELLED", attempt: 0 });
    expect(await job(jobId).dispatch(1)).toBe("stale");
  });

  it("approval: approve first, then cancel stops the queued job and its dispatch", async () => {
    const jobId = await plannedJob();
    expect((await api(`/api/jobs/${jobId}/approve`, { method: "POST", json: {} })).status).toBe(200);
    expect((await job(jobId).get())?.status).toBe("QUEUED");
    const cancel = await api(`/api/jobs/${jobId}/cancel`, { method: "POST", json: {} });
    expect(cancel.status).toBe(200);
    expect(await job(jobId).get()).toMatchObject({ status: "CANCELLED", attempt: 1 });
    // The queue's delivery of attempt 1 arrives after the cancel: it dispatches nothing.
    expect(await job(jobId).dispatch(1)).toBe("stale");
    await expect.poll(() => events(jobId)).toEqual(["CREATED", "PLANNED", "QUEUED", "CANCELLED"]);
  });

  it("approval and cancel at the same moment: one order wins, the job ends CANCELLED", async () => {
    const jobId = await plannedJob();
    const [approve, cancel] = await Promise.all([
      api(`/api/jobs/${jobId}/approve`, { method: "POST", json: {} }),
      api(`/api/jobs/${jobId}/cancel`, { method: "POST", json: {} }),
    ]);
    expect(cancel.status).toBe(200);
    expect([200, 409]).toContain(approve.status);
    const final = await job(jobId).get();
    expect(final?.status).toBe("CANCELLED");
    // The events tell the same story as the answers: QUEUED appears only if the approval won.
    const expected =
      approve.status === 200 ? ["CREATED", "PLANNED", "QUEUED", "CANCELLED"] : ["CREATED", "PLANNED", "CANCELLED"];
    await expect.poll(() => events(jobId)).toEqual(expected);
  });
});
