// Odd and hostile Telegram updates: each gets exactly the answer it should (400 for a malformed
// one, the right reply or silence otherwise), no handler fails (webhook_errors
// unchanged after each), and only the one well-formed /task from an allowed human makes a job.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { jobView } from "./helpers/job-view.ts";
import { nextUpdateId, post, SECRET, TelegramScope, webhookErrors } from "./helpers/telegram.ts";
import { api } from "./helpers/worker.ts";

const ALLOWED = { id: 48, is_bot: false, first_name: "Hal" };
const chat = { id: 48, type: "private", first_name: "Hal" };
const tg = new TelegramScope([ALLOWED.id], "h-");

function updates(): unknown[] {
  const base = { message_id: 1, date: 1, chat, from: ALLOWED };
  return [
    { update_id: nextUpdateId() },
    { update_id: nextUpdateId(), message: null },
    { update_id: nextUpdateId(), message: { ...base, text: null } },
    { update_id: nextUpdateId(), message: { ...base, text: 42 } },
    { update_id: nextUpdateId(), message: { date: 1, text: "/task check git status" } },
    {
      update_id: nextUpdateId(),
      message: { ...base, text: "/task", entities: [{ type: "bot_command", offset: 0, length: 5 }] },
    },
    {
      update_id: nextUpdateId(),
      message: {
        ...base,
        text: `/task ${"x".repeat(5000)}`,
        entities: [{ type: "bot_command", offset: 0, length: 5 }],
      },
    },
    {
      update_id: nextUpdateId(),
      message: {
        ...base,
        text: "/approve job_0123456789abcdef' OR 1=1 --",
        entities: [{ type: "bot_command", offset: 0, length: 8 }],
      },
    },
    {
      update_id: nextUpdateId(),
      message: {
        ...base,
        text: "/logs ../../etc/passwd 99999999",
        entities: [{ type: "bot_command", offset: 0, length: 5 }],
      },
    },
    {
      update_id: nextUpdateId(),
      message: {
        ...base,
        photo: [{ file_id: "p", file_unique_id: "u", width: 1, height: 1 }],
        caption: "/task rm -rf /",
      },
    },
    {
      update_id: nextUpdateId(),
      channel_post: { message_id: 1, date: 1, chat: { id: -1001, type: "channel", title: "c" }, text: "/task x" },
    },
    {
      update_id: nextUpdateId(),
      my_chat_member: {
        chat,
        from: ALLOWED,
        date: 1,
        old_chat_member: { status: "member", user: ALLOWED },
        new_chat_member: { status: "kicked", user: ALLOWED, until_date: 0 },
      },
    },
    { update_id: nextUpdateId(), inline_query: { id: "iq", from: ALLOWED, query: "<b>", offset: "" } },
    { update_id: nextUpdateId(), callback_query: { id: "h-1", from: ALLOWED, chat_instance: "1" } },
    {
      update_id: nextUpdateId(),
      callback_query: { id: "h-2", from: ALLOWED, chat_instance: "1", data: "a:".padEnd(64, "z") },
    },
    {
      update_id: nextUpdateId(),
      callback_query: {
        id: "h-3",
        from: { ...ALLOWED, is_bot: true },
        chat_instance: "1",
        data: "r:job_0123456789abcdef",
      },
    },
    {
      update_id: nextUpdateId(),
      message: {
        ...base,
        from: { id: 48, is_bot: true, first_name: "bot" },
        text: "/task check git status",
        entities: [{ type: "bot_command", offset: 0, length: 5 }],
      },
    },
    {
      update_id: nextUpdateId(),
      message: {
        ...base,
        text: "/task\u0000 check git status",
        entities: [{ type: "bot_command", offset: 0, length: 5 }],
      },
    },
    {
      update_id: nextUpdateId(),
      message: {
        ...base,
        text: "/task\u202e check git status",
        entities: [{ type: "bot_command", offset: 0, length: 5 }],
      },
    },
  ];
}

describe("hostile updates", () => {
  it("answers each exactly: 400 for malformed ones, the right reply, and one job from the one real /task", async () => {
    await tg.skip();
    const jobsOf = async () =>
      (
        await env.DB.prepare("SELECT id, intent FROM jobs WHERE user_id = '48' ORDER BY id").all<{
          id: string;
          intent: string;
        }>()
      ).results;
    const before = await jobsOf();
    // What each update of updates() must get: its status and the Bot API calls it causes.
    const expected: [number, [string, RegExp][]][] = [
      [200, []], // no content at all
      [400, []], // message: null
      [400, []], // text: null
      [400, []], // text: 42
      [400, []], // a message with no chat
      [200, [["sendMessage", /^Usage: <code>\/task \[@project\] &lt;what to do&gt;<\/code>/]]],
      [200, [["sendMessage", /^That task is 5000 characters long; please keep it under 2000\.$/]]],
      [200, [["sendMessage", /^Usage: \/approve &lt;job id&gt;/]]],
      [200, [["sendMessage", /^Usage: \/logs &lt;job id&gt; \[lines\]/]]],
      [200, [["sendMessage", /^I only understand text commands\./]]], // a photo whose caption is "/task …"
      [200, []], // a channel post
      [200, []], // my_chat_member
      [200, []], // an inline query
      [200, [["answerCallbackQuery", /^This button is no longer valid\.$/]]], // a callback query without data
      [200, [["answerCallbackQuery", /^This button is no longer valid\.$/]]],
      [200, []], // a button pressed by a bot
      [200, []], // a /task sent by a bot
      [200, [["sendMessage", /^That task cannot be taken: intent may not contain control characters/]]], // a NUL
      [200, [["sendMessage", /^🧠 Planning… <i>⟨U\+202E⟩ check git status<\/i>$/s]]], // bidi: shown, not refused
    ];
    const all = updates();
    expect(all).toHaveLength(expected.length);
    const errors = await webhookErrors();
    for (const [i, u] of all.entries()) {
      const res = await post(u);
      const [status, calls] = expected[i] ?? [0, []];
      const what = `update ${i}: ${JSON.stringify(u).slice(0, 100)}`;
      expect(res.status, what).toBe(status);
      expect(await webhookErrors(), what).toBe(errors);
      const made = await tg.take();
      expect(
        made.map((c) => c.method),
        what,
      ).toEqual(calls.map(([m]) => m));
      for (const [j, [, text]] of calls.entries()) expect(String(made[j]?.params.text), what).toMatch(text);
      // Only the last update is a well-formed /task from an allowed human: it, and nothing
      // before it, makes the one new job.
      const fresh = (await jobsOf()).filter((j) => !before.some((b) => b.id === j.id));
      expect(
        fresh.map((j) => j.intent),
        what,
      ).toEqual(i === all.length - 1 ? ["\u202e check git status"] : []);
    }
    for (const raw of ["", "[]", "null", '{"update_id":-1}', '{"update_id":"1"}', "{".repeat(5000)]) {
      const res = await api("/telegram/webhook", {
        method: "POST",
        body: raw,
        headers: { "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET },
        token: null,
      });
      expect(res.status, raw.slice(0, 40)).toBe(400);
    }
  });
});

describe("text clipping", () => {
  it("never splits an emoji when shortening user text", async () => {
    const { clipText, renderJob } = await import("../src/bot/format.ts");
    const emoji = "😀".repeat(400);
    for (const n of [1, 2, 299, 300, 301]) {
      const clipped = clipText(emoji, n);
      expect(clipped.length).toBeLessThanOrEqual(n);
      expect(/[\uD800-\uDBFF]$/.test(clipped)).toBe(false);
    }
    const view = jobView({
      id: "job_0123456789abcdef",
      status: "FAILED",
      intent: `x${emoji}`,
      logTail: emoji,
      error: emoji,
      userId: "46",
      chatId: "46",
      messageId: 1,
    });
    const html = renderJob(view);
    expect(html.length).toBeLessThanOrEqual(4096);
    // every high surrogate is followed by its low surrogate
    expect(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/.test(html)).toBe(false);
  });
});
