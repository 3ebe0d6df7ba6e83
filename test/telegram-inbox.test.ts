// The webhook answers once an update is stored in its chat's ChatInboxDO; the bot replies from
// there. Replies stay in arrival order per chat while several chats post at once, a redelivered
// update is answered once, a failing update is counted and holds nothing up, and an update left
// stored by an eviction is handled by the alarm (or given up, counted, after repeated cut-offs).
import { env, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { type ChatInboxDO, MAX_TRIES, SEEN_WINDOW } from "../src/bot/chat-inbox-do.ts";
import { chatKeyOf } from "../src/bot/chat-key.ts";
import {
  expectWebhookErrors,
  failNext,
  inboxOf,
  message,
  post,
  postOnly,
  settled,
  TelegramScope,
  textOf,
  webhookErrors,
} from "./helpers/telegram.ts";
import { BASE } from "./helpers/worker.ts";

// An allowed user writing in groups of their own, so no other test file shares these chats.
const USER = { id: 44, is_bot: false, first_name: "Ida" };
const group = (id: number) => ({ id, type: "group" as const, title: "inbox" });
const REFERENCE = group(-917_000);
const CHATS = [group(-917_001), group(-917_002), group(-917_003), group(-917_004)];
/** The chat of the test that looks inside deliver. */
const QUIET = group(-917_005);
const tg = new TelegramScope([REFERENCE.id, QUIET.id, ...CHATS.map((c) => c.id)], "inbox-");

// Replies that need a Durable Object or D1 (slow) between ones that need neither (fast), so a
// reply that does not wait for the one before it overtakes it.
const UNKNOWN = "job_0000000000inboxtest";
const COMMANDS = [
  `/status ${UNKNOWN}`,
  "/help",
  "/logs",
  `/logs ${UNKNOWN}`,
  "/task",
  "/approve",
  `/plan ${UNKNOWN}`,
  "/help",
];

describe("the chat inbox", () => {
  it("replies in each chat in the order its updates arrived, with several chats posting at once", async () => {
    // What each command answers, one at a time.
    const expected: string[] = [];
    for (const text of COMMANDS) {
      await post(message(USER, text, REFERENCE));
      const made = await tg.take();
      expect(made.map((c) => c.method)).toEqual(["sendMessage"]);
      expected.push(textOf(made[0]));
    }
    expect(new Set(expected).size).toBeGreaterThan(3);

    // Each chat posts its updates one after another (each answered before the next is sent, as
    // Telegram does), every chat at the same time, each in its own rotation of the commands.
    const order = (k: number) => COMMANDS.map((_, i) => (i + k) % COMMANDS.length);
    await Promise.all(
      CHATS.map(async (chat, k) => {
        for (const i of order(k)) {
          const res = await postOnly(message(USER, COMMANDS[i] ?? "", chat));
          expect(res.status).toBe(200);
        }
      }),
    );
    for (const chat of CHATS) await settled(message(USER, "", chat));

    const made = await tg.take();
    for (const [k, chat] of CHATS.entries()) {
      const replies = made.filter((c) => String(c.params.chat_id) === String(chat.id));
      expect(replies.map((c) => [c.method, c.ok])).toEqual(COMMANDS.map(() => ["sendMessage", true]));
      expect(replies.map(textOf)).toEqual(order(k).map((i) => expected[i]));
    }
  });

  it("answers an update Telegram delivers twice only once", async () => {
    const update = message(USER, "/help", CHATS[0]);
    expect((await post(update)).status).toBe(200);
    expect((await post(update)).status).toBe(200);
    // Also while the first is still waiting behind a slow one.
    const slow = message(USER, `/status ${UNKNOWN}`, CHATS[1]);
    const again = message(USER, "/logs", CHATS[1]);
    await Promise.all([postOnly(slow), postOnly(again)].map(async (p) => expect((await p).status).toBe(200)));
    expect((await postOnly(again)).status).toBe(200);
    await settled(again);
    const made = await tg.take();
    const to = (chat: { id: number } | undefined) =>
      made.filter((c) => String(c.params.chat_id) === String(chat?.id)).map((c) => c.method);
    expect(to(CHATS[0])).toEqual(["sendMessage"]);
    expect(to(CHATS[1])).toEqual(["sendMessage", "sendMessage"]);
  });

  it("counts an update whose handler fails, does not retry it, and answers the chat's next one", async () => {
    const chat = CHATS[2] ?? REFERENCE;
    const before = await webhookErrors();
    await failNext("sendMessage", chat.id, { errorCode: 500, description: "Internal Server Error" });
    expectWebhookErrors(1);
    const poison = message(USER, "/help", chat);
    const next = message(USER, "/logs", chat);
    // Posted back to back: the second is stored while the first is still being handled.
    expect((await postOnly(poison)).status).toBe(200);
    expect((await postOnly(next)).status).toBe(200);
    await settled(next);
    expect(await webhookErrors()).toBe(before + 1);
    const made = await tg.take();
    expect(made.map((c) => [c.method, c.ok])).toEqual([
      ["sendMessage", false],
      ["sendMessage", true],
    ]);
    expect(textOf(made[1])).toMatch(/^Usage: \/logs/);
  });

  it("handles an update stored before an eviction when the alarm fires", async () => {
    const update = message(USER, "/logs", CHATS[3]);
    const inbox = inboxOf(update);
    await runInDurableObject(inbox, (i: ChatInboxDO) => {
      expect(i.store(update.update_id, JSON.stringify(update), BASE)).toBe("queued");
    });
    await evictDurableObject(inbox);
    expect(await tg.calls()).toEqual([]);
    expect(await runDurableObjectAlarm(inbox)).toBe(true);
    expect(await inbox.settled()).toBe(0);
    const made = await tg.take();
    expect(made.map((c) => [c.method, c.ok])).toEqual([["sendMessage", true]]);
    expect(textOf(made[0])).toMatch(/^Usage: \/logs/);
    // Still remembered: a redelivery after the restart is not answered again.
    expect((await post(update)).status).toBe(200);
    expect(await tg.take()).toEqual([]);
  });

  it("answers deliver before any of the handler's work has run, then handles the update", async () => {
    const update = message(USER, "/logs", QUIET);
    const inbox = inboxOf(update);
    await runInDurableObject(inbox, async (i: ChatInboxDO, state) => {
      expect(await i.deliver(update.update_id, JSON.stringify(update), BASE)).toBe("queued");
      // Stored, and not one try counted: the handler (the webhook's wait) had not started.
      const rows = state.storage.sql.exec("SELECT tries FROM inbox WHERE update_id = ?", update.update_id).toArray();
      expect(rows).toEqual([{ tries: 0 }]);
    });
    expect(await inbox.settled()).toBe(0);
    const made = await tg.take();
    expect(made.map((c) => [c.method, c.ok])).toEqual([["sendMessage", true]]);
    expect(textOf(made[0])).toMatch(/^Usage: \/logs/);
  });

  it("gives up an update cut off by restarts too often, counts it, and goes on", async () => {
    const chat = CHATS[3] ?? REFERENCE;
    const stuck = message(USER, "/help", chat);
    const inbox = inboxOf(stuck);
    const before = await webhookErrors();
    expectWebhookErrors(1);
    await runInDurableObject(inbox, (i: ChatInboxDO, state) => {
      i.store(stuck.update_id, JSON.stringify(stuck), BASE);
      // As if MAX_TRIES starts of its handler had each been cut off by an eviction.
      state.storage.sql.exec("UPDATE inbox SET tries = ? WHERE update_id = ?", MAX_TRIES, stuck.update_id);
    });
    await evictDurableObject(inbox);
    const next = message(USER, "/logs", chat);
    expect((await post(next)).status).toBe(200);
    expect(await webhookErrors()).toBe(before + 1);
    const made = await tg.take();
    expect(made.map((c) => [c.method, textOf(c).slice(0, 11)])).toEqual([["sendMessage", "Usage: /log"]]);
  });
});

describe("an update the webhook refuses", () => {
  it("is neither stored nor remembered: the same update_id sent properly is answered", async () => {
    const good = message(USER, "/logs", CHATS[0]);
    const malformed = { ...good, message: { ...good.message, text: 42 } };
    expect((await post(malformed)).status).toBe(400);
    expect((await post(good, "wrong-secret")).status).toBe(401);
    expect(await inboxOf(good).settled()).toBe(0);
    expect(await tg.take()).toEqual([]);
    expect((await post(good)).status).toBe(200);
    expect((await tg.take()).map((c) => [c.method, textOf(c).slice(0, 11)])).toEqual([["sendMessage", "Usage: /log"]]);
  });
});

describe("the window of update ids seen", () => {
  it("holds the last SEEN_WINDOW ids of the chat, so it stays bounded", async () => {
    const inbox = env.CHAT_INBOX.getByName("chat:-917999");
    await runInDurableObject(inbox, (i: ChatInboxDO, state) => {
      const first = 5_000_000;
      for (let n = 0; n <= SEEN_WINDOW; n++) expect(i.store(first + n, "{}", BASE)).toBe("queued");
      const seen = state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM seen").one().n;
      expect(seen).toBe(SEEN_WINDOW);
      expect(i.store(first + 1, "{}", BASE)).toBe("duplicate");
      expect(i.store(first + SEEN_WINDOW, "{}", BASE)).toBe("duplicate");
      // The oldest fell out of the window: a redelivery that late is taken as new.
      expect(i.store(first, "{}", BASE)).toBe("queued");
      // These were never meant to be handled.
      state.storage.sql.exec("DELETE FROM inbox");
      return state.storage.deleteAlarm();
    });
  });
});

describe("which chat an update belongs to", () => {
  it("a button press belongs to the chat of its message, an inline one to the user", () => {
    const from = { id: 7, is_bot: false, first_name: "A" };
    expect(chatKeyOf(message(from, "/help", group(-5)))).toBe("chat:-5");
    expect(chatKeyOf(tg.callback(from, "x", 1, -6))).toBe("chat:-6");
    expect(chatKeyOf({ update_id: 1, callback_query: { id: "1", from, chat_instance: "1", data: "x" } })).toBe(
      "user:7",
    );
    expect(chatKeyOf({ update_id: 1, inline_query: { id: "1", from, query: "", offset: "" } })).toBe("user:7");
    expect(chatKeyOf({ update_id: 1, my_chat_member: { chat: { id: -8 }, from } })).toBe("chat:-8");
    expect(chatKeyOf({ update_id: 1 })).toBe("other");
  });
});
