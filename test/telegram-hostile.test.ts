// Odd and hostile Telegram updates: none may crash the webhook (no 5xx) or create a job for
// someone who is not allowed.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { nextUpdateId, post, SECRET } from "./helpers/telegram.ts";
import { api } from "./helpers/worker.ts";

const ALLOWED = { id: 46, is_bot: false, first_name: "Hal" };
const chat = { id: 46, type: "private", first_name: "Hal" };

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
        from: { id: 46, is_bot: true, first_name: "bot" },
        text: "/task check git status",
        entities: [{ type: "bot_command", offset: 0, length: 5 }],
      },
    },
    {
      update_id: nextUpdateId(),
      message: {
        ...base,
        text: "/task\u0000\u202e check git status",
        entities: [{ type: "bot_command", offset: 0, length: 5 }],
      },
    },
  ];
}

describe("hostile updates", () => {
  it("never answers 5xx and never creates a job for a bot or a malformed update", async () => {
    const before = await env.DB.prepare("SELECT COUNT(*) AS n FROM jobs WHERE user_id = '46'").first<{ n: number }>();
    for (const u of updates()) {
      const res = await post(u);
      expect(res.status, JSON.stringify(u).slice(0, 120)).toBeLessThan(500);
    }
    for (const raw of ["", "[]", "null", '{"update_id":-1}', '{"update_id":"1"}', "{".repeat(5000)]) {
      const res = await api("/telegram/webhook", {
        method: "POST",
        body: raw,
        headers: { "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET },
        token: null,
      });
      expect(res.status, raw.slice(0, 40)).toBeLessThan(500);
    }
    const after = await env.DB.prepare("SELECT COUNT(*) AS n FROM jobs WHERE user_id = '46'").first<{ n: number }>();
    // Only the last update is a well-formed /task from an allowed human; it may plan a job.
    expect((after?.n ?? 0) - (before?.n ?? 0)).toBeLessThanOrEqual(1);
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
    const view = {
      id: "job_0123456789abcdef",
      projectId: "default",
      status: "FAILED",
      intent: `x${emoji}`,
      risk: null,
      attempt: 1,
      plan: null,
      spec: null,
      steps: [],
      artifacts: [],
      logTail: emoji,
      error: emoji,
      agentId: null,
      userId: "46",
      chatId: "46",
      messageId: 1,
      needsApproval: false,
      decidedBy: null,
      approvalDeadline: null,
      createdAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
      startedAt: null,
      finishedAt: null,
    } as const;
    const html = renderJob({ ...view, steps: [], artifacts: [] });
    expect(html.length).toBeLessThanOrEqual(4096);
    // every high surrogate is followed by its low surrogate
    expect(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/.test(html)).toBe(false);
  });
});
