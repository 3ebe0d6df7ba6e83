// The chat-load bench's order check (bench/chat-load.ts): per chat, the replies it recognises must
// follow the commands in the order sent, whatever else the bot sends in between.
import { describe, expect, it } from "vitest";
import { repliesInOrder } from "../../bench/chat-load.ts";
import type { RecordedCall } from "../helpers/node/fake-telegram.ts";

let seq = 0;
const reply = (chat: number, text: string, method = "sendMessage"): RecordedCall => ({
  seq: seq++,
  method,
  params: { chat_id: chat, text },
  at: seq,
  ok: true,
});
const sigs = new Map([
  ["/jobs", "Your jobs"],
  ["/help", "SKYNET —"],
  ["/task x", "🧠 Planning…"],
]);

describe("chat-load order check", () => {
  it("accepts replies in the order sent, skipping what it does not recognise", () => {
    const sent = new Map([
      [1, ["/jobs", "/help", "/task x", "/jobs"]],
      [2, ["/help"]],
    ]);
    const calls = [
      reply(1, "No jobs yet."), // not recognised: skipped
      reply(2, "SKYNET — your tasks"),
      reply(1, "<b>SKYNET</b> — your tasks"),
      reply(1, "🧠 Planning… check git status"),
      reply(1, "✅ job finished"), // a job's own notice
      reply(1, "Your jobs (1)", "editMessageText"), // not a sendMessage
      reply(1, "Your jobs (1)"),
    ];
    expect(repliesInOrder(sent, calls, sigs)).toEqual({ inOrder: true, recognised: 4 });
  });

  it("refuses two replies swapped in one chat, and a reply for a command never sent", () => {
    const sent = new Map([[1, ["/jobs", "/help"]]]);
    expect(repliesInOrder(sent, [reply(1, "SKYNET — x"), reply(1, "Your jobs")], sigs).inOrder).toBe(false);
    expect(repliesInOrder(new Map([[1, ["/help"]]]), [reply(1, "Your jobs")], sigs).inOrder).toBe(false);
    // Another chat's replies do not count for this one.
    expect(repliesInOrder(sent, [reply(2, "SKYNET — x"), reply(1, "Your jobs")], sigs).inOrder).toBe(true);
  });

  it("says unknown when two commands' replies look alike", () => {
    const alike = new Map([
      ["/jobs", "Your jobs"],
      ["/status", "Your jobs"],
    ]);
    expect(repliesInOrder(new Map([[1, ["/jobs"]]]), [reply(1, "Your jobs")], alike).inOrder).toBe("unknown");
  });
});
