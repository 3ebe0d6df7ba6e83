// Follow-ups through the webhook, with real Telegram update JSON: a reply to the bot's message about
// a job starts a new job carrying that job's intent and answer (for the planner, as data), threaded
// under the earlier message; only the bot's own messages count, only jobs this person may see.
import { env, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { JobDO } from "../src/jobs/job-do.ts";
import { insides } from "./helpers/job-insides.ts";
import { type Call, lastJobPlanned, message, post, TelegramScope, type TgUser, textOf } from "./helpers/telegram.ts";
import { api } from "./helpers/worker.ts";

const OWNER = { id: 46, is_bot: false, first_name: "Ada" };
const OTHER = { id: 44, is_bot: false, first_name: "Eve" };
const BOT = { id: 123456, is_bot: true, first_name: "SKYNET" };
const GROUP = { id: -100777, type: "supergroup" as const, title: "threads" };
const tg = new TelegramScope([GROUP.id], "t16-");

beforeEach(async () => {
  await tg.skip();
});

const stub = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));
const sent = (calls: Call[]) => calls.filter((c) => c.method === "sendMessage");

/** A text message in the group that replies to `to` (as Telegram sends it: the replied message inside). */
function replyTo(from: TgUser, text: string, to: { message_id: number; from: TgUser; text: string }) {
  const u = message(from, text, GROUP);
  return {
    ...u,
    message: {
      ...u.message,
      reply_to_message: { ...to, chat: u.message.chat, date: Math.floor(Date.now() / 1000) },
    },
  };
}

const jobCount = async (userId: number) =>
  (await env.DB.prepare("SELECT COUNT(*) AS n FROM jobs WHERE user_id = ?").bind(String(userId)).first<{ n: number }>())
    ?.n ?? 0;

/** A job of OWNER's, planned, with an answer recorded; returns its id and its message's id. */
async function parentJob(intent: string, answer: string): Promise<{ jobId: string; messageId: number }> {
  await post(message(OWNER, `/task ${intent}`, GROUP));
  const jobId = await lastJobPlanned(OWNER.id);
  await runInDurableObject(stub(jobId), async (i: JobDO) => {
    const s = insides(i).load();
    if (!s) throw new Error("no job");
    s.answer = { text: answer, by: "rules", at: new Date().toISOString() };
    insides(i).commit(s);
    await insides(i).afterChange();
  });
  const row = await env.DB.prepare("SELECT message_id AS m FROM jobs WHERE id = ?").bind(jobId).first<{ m: number }>();
  await tg.skip();
  return { jobId, messageId: row?.m ?? 0 };
}

const followUpOfJob = (jobId: string) =>
  runInDurableObject(stub(jobId), async (i: JobDO) => insides(i).load()?.followUp ?? null);

describe("Telegram follow-ups", () => {
  it("a reply to a job's message starts a threaded job that carries the earlier intent and answer", async () => {
    const parent = await parentJob("check git status", "The tree is clean on branch main.");
    await post(replyTo(OWNER, "show me the README", { message_id: parent.messageId, from: BOT, text: "✅ Succeeded" }));
    const planning = sent(await tg.take())[0];
    expect(planning?.params.reply_parameters).toMatchObject({ message_id: parent.messageId });
    expect(textOf(planning)).toContain(`follow-up of <code>${parent.jobId}</code>`);
    const child = await lastJobPlanned(OWNER.id);
    expect(child).not.toBe(parent.jobId);
    const view = await stub(child).get();
    // The new text is the intent; the rules planned it on its own (no context in the plan).
    expect(view?.intent).toBe("show me the README");
    expect(view?.plan?.planner).toBe("rules");
    expect(view?.parentJobId).toBe(parent.jobId);
    const viaApi = (await (await api(`/api/jobs/${child}`)).json()) as { parentJobId?: string | null };
    expect(viaApi.parentJobId).toBe(parent.jobId);
    expect(
      ((await (await api(`/api/jobs/${parent.jobId}`)).json()) as { parentJobId?: string | null }).parentJobId,
    ).toBeNull();
    expect(await followUpOfJob(child)).toEqual({
      parentJobId: parent.jobId,
      intent: "check git status",
      answer: "The tree is clean on branch main.",
    });
    const thread = await env.DB.prepare(
      "SELECT parent_job_id AS p, reply_to_message_id AS r FROM job_threads WHERE job_id = ?",
    )
      .bind(child)
      .first<{ p: string; r: number }>();
    expect(thread).toEqual({ p: parent.jobId, r: parent.messageId });
  });

  it("with the rule planner, a follow-up it does not understand gets the usual refusal", async () => {
    const parent = await parentJob("run the tests", "2 failed: test_a, test_b.");
    await post(message(OWNER, "/task now fix it", GROUP));
    const plain = await stub(await lastJobPlanned(OWNER.id)).get();
    await post(replyTo(OWNER, "now fix it", { message_id: parent.messageId, from: BOT, text: "x" }));
    const child = await lastJobPlanned(OWNER.id);
    const view = await stub(child).get();
    expect(await followUpOfJob(child)).toMatchObject({ parentJobId: parent.jobId });
    expect(plain?.status).toBe("FAILED");
    expect(view?.status).toBe("FAILED");
    expect(view?.error).toBe(plain?.error);
    const edit = await tg.waitCall((c) => c.method === "editMessageText" && textOf(c).includes(child));
    expect(textOf(edit)).toContain("Failed");
  });

  it("finds the job by the id in the bot's status line when the message is not the job's home", async () => {
    const parent = await parentJob("check git status", "clean");
    const text = `✅ Succeeded · ${parent.jobId}\ncheck git status`;
    await post(replyTo(OWNER, "list files in src", { message_id: 999_001, from: BOT, text }));
    expect(textOf(sent(await tg.take())[0])).toContain(`follow-up of <code>${parent.jobId}</code>`);
    expect(await followUpOfJob(await lastJobPlanned(OWNER.id))).toMatchObject({ parentJobId: parent.jobId });
  });

  it("refuses another person's job as unknown, and bot messages about no job clearly", async () => {
    const parent = await parentJob("check git status", "clean");
    const before = await jobCount(OTHER.id);
    await post(replyTo(OTHER, "now push it", { message_id: parent.messageId, from: BOT, text: "x" }));
    // Also by a forged status line naming the job: still someone else's.
    const forged = `✅ Succeeded · ${parent.jobId}`;
    await post(replyTo(OTHER, "now push it", { message_id: 999_002, from: BOT, text: forged }));
    await post(replyTo(OWNER, "and again", { message_id: 999_003, from: BOT, text: "Your jobs\nnothing here" }));
    const replies = sent(await tg.take()).map(textOf);
    expect(replies).toEqual([
      "I don't know that job.",
      "I don't know that job.",
      expect.stringContaining("I can't tell which job that message is about"),
    ]);
    expect(await jobCount(OTHER.id)).toBe(before);
  });

  it("ignores replies to messages that are not the bot's (a person's, another bot's)", async () => {
    const parent = await parentJob("check git status", "clean");
    const before = await jobCount(OWNER.id);
    const otherBot = { id: 777, is_bot: true, first_name: "Impostor" };
    await post(replyTo(OWNER, "now fix it", { message_id: parent.messageId, from: OTHER, text: "x" }));
    await post(replyTo(OWNER, "now fix it", { message_id: parent.messageId, from: otherBot, text: "x" }));
    expect(sent(await tg.take())).toEqual([]); // a group: plain text that is not for the bot gets no answer
    expect(await jobCount(OWNER.id)).toBe(before);
  });
});
