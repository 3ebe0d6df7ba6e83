// The Bot API stand-in refuses what Telegram refuses, so the tests built on it can fail: bad
// inline buttons, an edit that changes nothing (same rendered text and keyboard), a second answer
// to a callback query, and Telegram's own flood control, blocked bot and missing chat. Refusals a
// test arranged are marked expected; any other is reported once by takeUnexpectedRefusals().
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeTelegram, parseTelegramHtml, startFakeTelegram } from "../helpers/node/fake-telegram.ts";

let tg: FakeTelegram;
beforeAll(async () => {
  tg = await startFakeTelegram();
});
afterAll(async () => {
  await tg.close();
});

async function call(method: string, params: Record<string, unknown>) {
  const res = await fetch(`${tg.url}/bot${tg.token}/${method}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(params),
  });
  return (await res.json()) as {
    ok: boolean;
    error_code?: number;
    description?: string;
    parameters?: { retry_after?: number };
    result?: { message_id: number };
  };
}

const control = (path: string, body: unknown) =>
  fetch(`${tg.url}${path}`, { method: "POST", body: JSON.stringify(body) });
const keyboard = (...buttons: Record<string, unknown>[]) => ({ inline_keyboard: [buttons] });

describe("Bot API stand-in", () => {
  it("checks inline buttons as Telegram does", async () => {
    const send = (markup: unknown) => call("sendMessage", { chat_id: 1, text: "x", reply_markup: markup });
    expect((await send(keyboard({ text: "ok", callback_data: "a".repeat(64) }))).ok).toBe(true);
    expect(await send(keyboard({ text: "ok", callback_data: "é".repeat(33) }))).toMatchObject({
      error_code: 400,
      description: "Bad Request: BUTTON_DATA_INVALID",
    });
    expect((await send(keyboard({ text: "ok", callback_data: "" }))).description).toBe(
      "Bad Request: BUTTON_DATA_INVALID",
    );
    expect((await send(keyboard({ text: "", callback_data: "a" }))).description).toBe(
      "Bad Request: BUTTON_TEXT_INVALID",
    );
    expect((await send(keyboard({ text: "only text" }))).description).toBe(
      "Bad Request: text buttons are unallowed in the inline keyboard",
    );
    expect((await send({ inline_keyboard: "nope" })).ok).toBe(false);
    expect(tg.takeUnexpectedRefusals()).toHaveLength(5);
    expect(tg.takeUnexpectedRefusals()).toEqual([]);
  });

  it("refuses an edit that changes neither the rendered text nor the keyboard", async () => {
    const sent = await call("sendMessage", { chat_id: 2, text: "<b>hi</b> there", parse_mode: "HTML" });
    const edit = (text: string, markup?: unknown) =>
      call("editMessageText", {
        chat_id: 2,
        message_id: sent.result?.message_id,
        text,
        parse_mode: "HTML",
        ...(markup ? { reply_markup: markup } : {}),
      });
    // <strong> is the same entity as <b>, and trailing blanks are trimmed: not modified.
    expect((await edit("<strong>hi</strong> there  ")).description).toMatch(/^Bad Request: message is not modified/);
    // Different formatting of the same letters is a change.
    expect((await edit("<i>hi</i> there")).ok).toBe(true);
    // A keyboard added is a change; the same keyboard again is not.
    const kb = keyboard({ text: "Go", callback_data: "g" });
    expect((await edit("<i>hi</i> there", kb)).ok).toBe(true);
    expect((await edit("<i>hi</i> there", kb)).description).toMatch(/message is not modified/);
    expect(tg.takeUnexpectedRefusals().map((c) => c.method)).toEqual(["editMessageText", "editMessageText"]);
  });

  it("answers each callback query once", async () => {
    expect((await call("answerCallbackQuery", { callback_query_id: "q1", text: "ok" })).ok).toBe(true);
    expect(await call("answerCallbackQuery", { callback_query_id: "q1" })).toMatchObject({
      ok: false,
      error_code: 400,
      description: "Bad Request: query is too old and response timeout expired or query ID is invalid",
    });
    expect(tg.takeUnexpectedRefusals()).toHaveLength(1);
  });

  it("has Telegram's own refusals: flood control with retry_after, a blocked bot, a missing chat", async () => {
    await control("/__chat", { chatId: 10, floodSeconds: 5 });
    await control("/__chat", { chatId: 11, state: "blocked" });
    await control("/__chat", { chatId: 12, state: "missing" });
    const flood = await call("sendMessage", { chat_id: 10, text: "x" });
    expect(flood).toMatchObject({ ok: false, error_code: 429, parameters: { retry_after: 5 } });
    expect(flood.description).toBe("Too Many Requests: retry after 5");
    expect(await call("sendMessage", { chat_id: 11, text: "x" })).toMatchObject({
      error_code: 403,
      description: "Forbidden: bot was blocked by the user",
    });
    expect(await call("editMessageText", { chat_id: 12, message_id: 1, text: "x" })).toMatchObject({
      error_code: 400,
      description: "Bad Request: chat not found",
    });
    // Other chats are unaffected; arranged refusals are not reported as unexpected.
    expect((await call("sendMessage", { chat_id: 13, text: "x" })).ok).toBe(true);
    expect(tg.takeUnexpectedRefusals()).toEqual([]);
  });

  it("parses Telegram HTML into text and entities", () => {
    expect(parseTelegramHtml("a <b>b</b> &lt;c&gt;")).toEqual({ ok: true, text: "a b <c>", entities: ["b@2+1"] });
    expect(parseTelegramHtml("a <job id>")).toEqual({
      ok: false,
      error: `Can't parse entities: unsupported start tag "job" at byte offset 2`,
    });
    expect(parseTelegramHtml("<b>x</i>").ok).toBe(false);
    expect(parseTelegramHtml("a > b").ok).toBe(false);
  });
});
