// Helpers for the Telegram worker tests: real Update JSON posted to the webhook, and the calls the
// Bot API stand-in recorded. Test files run side by side against one stand-in, so each file uses
// its own users/chats and callback-query-id prefix and sees only the calls made to them.
import { env, runDurableObjectAlarm } from "cloudflare:test";
import { chatKeyOf } from "../../src/bot/chat-key.ts";
import type { ChatInboxDO } from "../../src/index.ts";
import { api } from "./worker.ts";

export const SECRET = "test-webhook-secret";

export interface TgUser {
  id: number;
  is_bot: boolean;
  first_name: string;
  username?: string;
}

export interface TgChat {
  id: number;
  type: "private" | "group" | "supergroup";
  title?: string;
}

export interface Call {
  seq: number;
  method: string;
  params: Record<string, unknown>;
  /** Whether the stand-in accepted the call (it refuses what Telegram refuses), and why not. */
  ok?: boolean;
  error?: string;
  /** A refusal the test arranged (failNext, setChat) or acknowledged. */
  expected?: boolean;
}

/** Every scope made in this test file; the after-each check (refusals.ts) looks at their calls. */
export const scopes: TelegramScope[] = [];

let webhookErrorsExpected = 0;

/** Declares that this test makes the webhook handler fail `n` times (checked by refusals.ts). */
export function expectWebhookErrors(n = 1): void {
  webhookErrorsExpected += n;
}

export function takeExpectedWebhookErrors(): number {
  const n = webhookErrorsExpected;
  webhookErrorsExpected = 0;
  return n;
}

export const textOf = (c: Call | undefined): string => String(c?.params.text ?? "");

let updateId = Math.floor(Math.random() * 1_000_000);
let messageId = 1;

export function nextUpdateId(): number {
  updateId += 1;
  return updateId;
}

/** A message update; commands get their bot_command entity as Telegram sends them. */
export function message(from: TgUser, text: string, chat: TgChat = { id: from.id, type: "private" }) {
  const command = /^\/[A-Za-z0-9_]+(?:@[A-Za-z0-9_]+)?/.exec(text)?.[0];
  return {
    update_id: nextUpdateId(),
    message: {
      message_id: messageId++,
      from,
      chat: chat.type === "private" ? { ...chat, first_name: from.first_name } : { title: "team", ...chat },
      date: Math.floor(Date.now() / 1000),
      text,
      ...(command ? { entities: [{ type: "bot_command", offset: 0, length: command.length }] } : {}),
    },
  };
}

export class TelegramScope {
  private seen = 0;
  private readonly chats: string;
  private readonly cbPrefix: string;
  private cbCount = 0;
  /** Calls before this one were already checked for refusals. */
  private checked = 0;
  private expected: RegExp[] = [];

  constructor(chats: number[], cbPrefix: string) {
    this.chats = chats.join(",");
    this.cbPrefix = cbPrefix;
    scopes.push(this);
  }

  /** Declares that this test expects Telegram to refuse a call with a matching error. */
  expectRefusal(pattern: RegExp): void {
    this.expected.push(pattern);
  }

  /**
   * The refused calls made to this scope since the last check that the test neither arranged nor
   * declared (expectRefusal). Each is acknowledged at the stand-in, so it is reported once.
   */
  async takeUnexpectedRefusals(): Promise<Call[]> {
    const url = `${env.TELEGRAM_API_ROOT}/__calls?since=${this.checked}&chats=${this.chats}&cb=${this.cbPrefix}`;
    const fresh = (await (await fetch(url)).json()) as Call[];
    const last = fresh.at(-1);
    if (last) this.checked = last.seq + 1;
    const refused = fresh.filter((c) => c.ok === false && !c.expected);
    const expected = this.expected;
    this.expected = [];
    if (refused.length > 0) {
      await fetch(`${env.TELEGRAM_API_ROOT}/__ack`, {
        method: "POST",
        body: JSON.stringify({ seqs: refused.map((c) => c.seq) }),
      });
    }
    return refused.filter((c) => !expected.some((p) => p.test(c.error ?? "")));
  }

  callback(from: TgUser, data: string, msgId = 1, chatId = from.id) {
    this.cbCount += 1;
    return {
      update_id: nextUpdateId(),
      callback_query: {
        id: `${this.cbPrefix}${this.cbCount}`,
        from,
        chat_instance: "1",
        data,
        message: {
          message_id: msgId,
          chat: { id: chatId, type: "private" },
          date: Math.floor(Date.now() / 1000),
          text: "x",
        },
      },
    };
  }

  /** This file's calls not yet taken. */
  async calls(): Promise<Call[]> {
    const url = `${env.TELEGRAM_API_ROOT}/__calls?since=${this.seen}&chats=${this.chats}&cb=${this.cbPrefix}`;
    return (await (await fetch(url)).json()) as Call[];
  }

  /** The calls made since the last `take()` (or `skip()`). */
  async take(): Promise<Call[]> {
    const fresh = await this.calls();
    const last = fresh.at(-1);
    if (last) this.seen = last.seq + 1;
    return fresh;
  }

  /** Forgets everything recorded so far. */
  async skip(): Promise<void> {
    await this.take();
  }

  /** Waits until a call matching `pred` has been made (the JobDO notifies from its own alarm). */
  async waitCall(pred: (c: Call) => boolean, timeoutMs = 5000): Promise<Call> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = (await this.calls()).find(pred);
      if (found) return found;
      if (Date.now() > deadline) throw new Error("timed out waiting for a Bot API call");
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/** Posts an update to the webhook and returns its answer, without waiting for the bot's replies. */
export async function postOnly(update: unknown, secret: string | null = SECRET): Promise<Response> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (secret !== null) headers["X-Telegram-Bot-Api-Secret-Token"] = secret;
  return api("/telegram/webhook", { method: "POST", body: JSON.stringify(update), headers, token: null });
}

/** The chat inbox an update went to (the same key the webhook uses). */
export function inboxOf(update: unknown): DurableObjectStub<ChatInboxDO> {
  return env.CHAT_INBOX.getByName(chatKeyOf(update as Record<string, unknown>));
}

/**
 * Waits until the update's chat inbox has handled everything stored so far (the webhook answers
 * before the bot replies), so the stand-in has recorded every call the bot made for it.
 */
export async function settled(update: unknown): Promise<void> {
  const left = await inboxOf(update).settled();
  if (left !== 0) throw new Error(`the chat inbox still holds ${left} update(s)`);
}

/** The count of updates whose handler failed (skynet_webhook_errors_total). */
export async function webhookErrors(): Promise<number> {
  const row = await env.DB.prepare("SELECT value FROM counters WHERE name = 'webhook_errors'").first<{
    value: number;
  }>();
  return row?.value ?? 0;
}

/** Posts an update and, when the webhook accepted it, waits for the bot to have handled it. */
export async function post(update: unknown, secret: string | null = SECRET): Promise<Response> {
  const res = await postOnly(update, secret);
  if (res.status === 200) await settled(update);
  return res;
}

/** The newest job of a user (from the ledger), after its planning alarm ran. */
export async function lastJobPlanned(userId: number): Promise<string> {
  const row = await env.DB.prepare("SELECT id FROM jobs WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT 1")
    .bind(String(userId))
    .first<{ id: string }>();
  if (!row) throw new Error("no job");
  await runDurableObjectAlarm(env.JOB.get(env.JOB.idFromName(row.id)));
  return row.id;
}

/** Tells the stand-in to refuse the next `times` calls of `method` to `chatId`. */
export async function failNext(
  method: string,
  chatId: number,
  failure: { errorCode: number; description: string; retryAfter?: number; times?: number },
): Promise<void> {
  await fetch(`${env.TELEGRAM_API_ROOT}/__fail`, {
    method: "POST",
    body: JSON.stringify({ method, chatId: String(chatId), ...failure }),
  });
}

/** Makes the stand-in behave like Telegram for a chat: blocked by the user, gone, or flood-limited. */
export async function setChat(
  chatId: number,
  how: { state?: "ok" | "blocked" | "missing"; floodSeconds?: number },
): Promise<void> {
  await fetch(`${env.TELEGRAM_API_ROOT}/__chat`, { method: "POST", body: JSON.stringify({ chatId, ...how }) });
}
