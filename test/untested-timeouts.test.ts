// A QUEUED job that no agent ever takes (issue 20): at JOB_TIMEOUT_SECONDS its JobDO alarm fails
// it with a reason that says so, the ledger row and events record it, the requester's Telegram
// message says it, and the registry forgets the offer so a later agent is not handed a dead job.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { JobView } from "../protocol/index.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { insides } from "./helpers/job-insides.ts";
import { TelegramScope, textOf } from "./helpers/telegram.ts";
import { JOB_EVENTS, pairAgent, TestAgent } from "./helpers/worker.ts";

vi.setConfig({ testTimeout: 30_000 });

const CHAT = 9301;
const tg = new TelegramScope([CHAT], "tq-");
/** wrangler.toml's JOB_TIMEOUT_SECONDS, which the worker tests run with. */
const TIMEOUT_S = 3600;
const REASON = `no agent picked the job up within ${TIMEOUT_S}s`;

beforeEach(async () => {
  await tg.skip();
});

const stub = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));

async function view(jobId: string): Promise<JobView> {
  const v = await stub(jobId).get();
  if (!v) throw new Error("no job");
  return v;
}

/** Moves the moment the job was queued into the past, as if it had waited `agoMs`. */
async function queuedAgo(jobId: string, agoMs: number): Promise<void> {
  await runInDurableObject(stub(jobId), (i: JobDO) => {
    const s = insides(i).load();
    if (!s || s.queuedAt === null) throw new Error("not queued");
    s.queuedAt = Date.now() - agoMs;
    insides(i).save(s);
  });
}

describe("a QUEUED job that no agent takes", () => {
  it("fails at JOB_TIMEOUT_SECONDS with a clear reason, in the ledger, its events and the requester's chat", async () => {
    const jobId = newJobId();
    // Requested from Telegram (a chat to tell) for a project no agent serves.
    await stub(jobId).create({
      jobId,
      projectId: "nobody-serves-this",
      intent: "check git status",
      userId: "42",
      chatId: String(CHAT),
    });
    await runDurableObjectAlarm(stub(jobId));
    expect((await view(jobId)).status).toBe("QUEUED");
    // The dispatch message goes through the real queue to the registry, which has nobody for it.
    await expect
      .poll(() => runInDurableObject(stub(jobId), (i: JobDO) => insides(i).load()?.dispatchedAttempt), {
        timeout: 10_000,
      })
      .toBe(1);

    // A minute short of the timeout the alarm leaves it waiting.
    await queuedAgo(jobId, (TIMEOUT_S - 60) * 1000);
    expect(await runDurableObjectAlarm(stub(jobId))).toBe(true);
    expect((await view(jobId)).status).toBe("QUEUED");

    await tg.skip();
    await queuedAgo(jobId, TIMEOUT_S * 1000);
    expect(await runDurableObjectAlarm(stub(jobId))).toBe(true);
    const failed = await view(jobId);
    expect(failed.status).toBe("FAILED");
    expect(failed.error).toBe(REASON);
    expect(failed.attempt).toBe(1);
    expect(failed.finishedAt).not.toBeNull();

    const row = await env.DB.prepare("SELECT status, error FROM jobs WHERE id = ?")
      .bind(jobId)
      .first<{ status: string; error: string | null }>();
    expect(row).toEqual({ status: "FAILED", error: REASON });
    const events = await env.DB.prepare(
      `SELECT event, to_status, detail FROM ${JOB_EVENTS} WHERE job_id = ? ORDER BY seq`,
    )
      .bind(jobId)
      .all<{ event: string; to_status: string; detail: string | null }>();
    const last = events.results.at(-1);
    expect(events.results.map((e) => `${e.event}:${e.to_status}`)).toEqual([
      "create:CREATED",
      "plan_ready:PLANNED",
      "approve:QUEUED",
      "fail:FAILED",
    ]);
    expect(JSON.parse(last?.detail ?? "null")).toEqual({ reason: REASON });

    // The requester's message now says it failed, and why.
    const told = await tg.waitCall((c) => textOf(c).includes("Failed"));
    expect(told.ok).toBe(true);
    expect(textOf(told)).toContain(`Reason: ${REASON}`);
    expect(textOf(told)).toContain(jobId);

    // The registry was told to drop the offer: an agent for the project arriving now gets nothing.
    const { token } = await pairAgent("late-for-timeout");
    const late = await TestAgent.connect(token, { workspaces: ["nobody-serves-this"], agentName: "late" });
    await expect(late.next("job_offer", 2000)).rejects.toThrow(/timed out waiting for job_offer/);
    late.close();
    // Nothing later moves it: another alarm leaves it FAILED with the same reason.
    await runDurableObjectAlarm(stub(jobId));
    expect((await view(jobId)).error).toBe(REASON);
  });
});
