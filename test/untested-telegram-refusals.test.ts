// Telegram's own refusals of a job's message, against the Bot API stand-in behaving like
// Telegram: flood control (429 with retry_after, honoured), a user who blocked the bot (403) and a
// chat that is gone (400 "chat not found") stop the retries for good, and every permanent refusal
// is logged and counted in /metrics; nothing is swallowed silently.
import { env, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { JobDO } from "../src/jobs/job-do.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { NotifyLater, type NotifyMemo, notifyJob } from "../src/notify/notify.ts";
import { insides } from "./helpers/job-insides.ts";
import { jobView } from "./helpers/job-view.ts";
import { expectWebhookErrors, failNext, message, post, setChat, TelegramScope } from "./helpers/telegram.ts";
import { api } from "./helpers/worker.ts";

const BLOCKED = 9101;
const GONE = 9102;
const FLOODED = 9103;
const BAD = 9104;
const FLOODED_JOB = 9105;
const HELPER = { id: 50, is_bot: false, first_name: "Hugo" };
const tg = new TelegramScope([BLOCKED, GONE, FLOODED, BAD, FLOODED_JOB, HELPER.id], "u1-");

beforeEach(async () => {
  await tg.skip();
});

async function refusals(): Promise<Record<string, number>> {
  const text = await (await api("/metrics")).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^skynet_telegram_refusals_total\{code="(\d+)"\} (\d+)$/gm)) {
    out[m[1] as string] = Number(m[2]);
  }
  return out;
}

/** A job of `chatId`, planned inside its JobDO with the outbox drained, as its alarm would. */
async function plannedJob(chatId: number, intent = "check git status") {
  const jobId = newJobId();
  const stub = env.JOB.get(env.JOB.idFromName(jobId));
  await stub.create({ jobId, projectId: "default", intent, userId: "42", chatId: String(chatId) });
  await runInDurableObject(stub, async (i: JobDO) => {
    const s = insides(i).load();
    if (!s) throw new Error("no state");
    await insides(i).plan(s);
    await insides(i).afterChange();
  });
  return { jobId, stub };
}

const outbox = (stub: DurableObjectStub<JobDO>) =>
  runInDurableObject(stub, (i: JobDO) => ({
    pending: insides(i)
      .outbox.items()
      .filter((item) => item.kind === "notify"),
    memo: insides(i).ctx.storage.kv.get<NotifyMemo>("notify") ?? {},
  }));

describe("Telegram's refusals of a job's message", () => {
  it("a user who blocked the bot: one try, recorded, counted, never retried", async () => {
    await setChat(BLOCKED, { state: "blocked" });
    const before = await refusals();
    const { stub } = await plannedJob(BLOCKED);
    const made = await tg.take();
    expect(made.map((c) => [c.method, c.ok, c.error])).toEqual([
      ["sendMessage", false, "Forbidden: bot was blocked by the user"],
    ]);
    const { pending, memo } = await outbox(stub);
    expect(pending).toEqual([]);
    expect(memo.undeliverable).toBe("Forbidden: bot was blocked by the user");
    expect((await refusals())["403"] ?? 0).toBe((before["403"] ?? 0) + 1);
    // The job goes on changing; nothing more is sent to a chat that refused it for good.
    await runInDurableObject(stub, async (i: JobDO) => {
      await i.cancel({ id: "42", isAdmin: false }, "test done");
    });
    expect(await tg.take()).toEqual([]);
  });

  it("a chat that no longer exists: 400 chat not found, counted, not retried", async () => {
    await setChat(GONE, { state: "missing" });
    const before = await refusals();
    const { stub } = await plannedJob(GONE);
    expect((await tg.take()).map((c) => [c.method, c.ok, c.error])).toEqual([
      ["sendMessage", false, "Bad Request: chat not found"],
    ]);
    const { pending, memo } = await outbox(stub);
    expect(pending).toEqual([]);
    expect(memo.undeliverable).toBe("Bad Request: chat not found");
    expect((await refusals())["400"] ?? 0).toBe((before["400"] ?? 0) + 1);
  });

  it("flood control: waits Telegram's retry_after, then delivers", async () => {
    await setChat(FLOODED, { floodSeconds: 2 });
    const job = jobView({ id: "job_0flood00000000001", chatId: String(FLOODED) });
    const first = await notifyJob(env, job, {}).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(NotifyLater);
    const wait = (first as NotifyLater).retryAfterMs;
    expect(wait).toBe(2000);
    await new Promise((r) => setTimeout(r, wait + 100));
    const memo = await notifyJob(env, job, {});
    expect(memo.messageId).toBeGreaterThan(0);
    expect((await tg.take()).map((c) => [c.method, c.ok])).toEqual([
      ["sendMessage", false],
      ["sendMessage", true],
    ]);
  });

  it("flood control on a job's chat: the notification waits Telegram's retry_after, the ledger does not", async () => {
    await setChat(FLOODED_JOB, { floodSeconds: 40 });
    const { jobId, stub } = await plannedJob(FLOODED_JOB);
    const refused = (await tg.take()).map((c) => [c.method, c.error]);
    // The stand-in counts the flood window down from setChat: under load a second may have passed.
    expect(refused).toEqual([["sendMessage", expect.stringMatching(/^Too Many Requests: retry after (40|39|38)$/)]]);
    const retryAfterS = Number(/(\d+)$/.exec(String(refused[0]?.[1]))?.[1]);
    const pending = await runInDurableObject(stub, (i: JobDO) => insides(i).outbox.items());
    expect(pending.map((p) => [p.kind, p.tries])).toEqual([["notify", 0]]);
    // Not before Telegram said it may be retried (less the second it rounds to).
    expect(pending[0]?.nextAt ?? 0).toBeGreaterThanOrEqual(Date.now() + (retryAfterS - 2) * 1000);
    const ledger = await env.DB.prepare("SELECT status FROM jobs WHERE id = ?").bind(jobId).first<{ status: string }>();
    expect(ledger?.status).toBe("QUEUED");
  });

  it("a message Telegram refuses as malformed: logged and counted, the next state is tried again", async () => {
    const before = await refusals();
    await failNext("sendMessage", BAD, { errorCode: 400, description: "Bad Request: can't parse entities" });
    const { stub } = await plannedJob(BAD);
    const { pending, memo } = await outbox(stub);
    expect(pending).toEqual([]);
    expect(memo.undeliverable).toBeUndefined();
    expect((await refusals())["400"] ?? 0).toBe((before["400"] ?? 0) + 1);
    await runInDurableObject(stub, async (i: JobDO) => {
      await i.cancel({ id: "42", isAdmin: false }, "test done");
    });
    const made = await tg.take();
    expect(made.map((c) => [c.method, c.ok])).toEqual([
      ["sendMessage", false],
      ["sendMessage", true],
    ]);
  });
});

describe("a webhook handler that fails", () => {
  it("is acknowledged to Telegram, counted in /metrics, and does not hold up the chat", async () => {
    const count = async () =>
      Number(/^skynet_webhook_errors_total (\d+)$/m.exec(await (await api("/metrics")).text())?.[1] ?? "NaN");
    const before = await count();
    // Telegram fails the bot's reply (its own 500): the /help handler throws.
    await failNext("sendMessage", HELPER.id, { errorCode: 500, description: "Internal Server Error" });
    expectWebhookErrors(1);
    const res = await post(message(HELPER, "/help"));
    expect(res.status).toBe(200);
    expect(await count()).toBe(before + 1);
    // The next update is handled normally.
    const ok = await post(message(HELPER, "/help"));
    expect(ok.status).toBe(200);
    expect((await tg.take()).map((c) => [c.method, c.ok])).toEqual([
      ["sendMessage", false],
      ["sendMessage", true],
    ]);
    expect(await count()).toBe(before + 1);
  });
});
