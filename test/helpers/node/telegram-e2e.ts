// Telegram end to end on wrangler dev: the stack (stack.ts) with its Worker wired to the Bot API
// stand-in, and real update JSON posted to its webhook.
import { expect } from "vitest";
import type { FakeAnthropic } from "./fake-anthropic.ts";
import type { FakeTelegram, RecordedCall } from "./fake-telegram.ts";
import type { GitRepo } from "./git-repo.ts";
import { type Stack, startStack } from "./stack.ts";
import { waitFor } from "./wait.ts";

export interface TelegramUser {
  id: number;
  is_bot: boolean;
  first_name: string;
  username?: string;
}

export interface TelegramStack extends Stack {
  /** Posts one update as Telegram would, with the webhook secret; the Worker must take it (200). */
  post(update: Record<string, unknown>): Promise<void>;
}

const SECRET = "e2e-webhook-secret";

/** The stack with the Worker's Telegram side on the Bot API stand-in; `model` gives it the Messages API stand-in. */
export async function startTelegramStack(
  io: { tg: FakeTelegram; claude: FakeAnthropic },
  repo: GitRepo,
  opts: { model: boolean; userId: number; name: string; allowShell?: boolean },
): Promise<TelegramStack> {
  const { tg, claude } = io;
  const stack = await startStack(repo, opts.name, {
    worker: {
      vars: {
        TELEGRAM_BOT_TOKEN: tg.token,
        TELEGRAM_WEBHOOK_SECRET: SECRET,
        TELEGRAM_API_ROOT: tg.url,
        TELEGRAM_ALLOWED_USER_IDS: String(opts.userId),
        ...(opts.model ? { ANTHROPIC_API_KEY: claude.apiKey, ANTHROPIC_BASE_URL: claude.url } : {}),
      },
    },
    agent: { allowShell: opts.allowShell, env: {}, name: opts.name },
  });
  return {
    ...stack,
    async post(update) {
      const res = await fetch(`${stack.worker.url}/telegram/webhook`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET },
        body: JSON.stringify({ update_id: updateId++, ...update }),
      });
      expect(res.status).toBe(200);
    },
  };
}

let updateId = 1;
let messageId = 1;

/** A private-chat message; a command gets its bot_command entity as Telegram sends it. */
export function chatMessage(from: TelegramUser, text: string, extra: Record<string, unknown> = {}) {
  const command = /^\/[A-Za-z0-9_]+/.exec(text)?.[0];
  return {
    message: {
      message_id: messageId++,
      from,
      chat: { id: from.id, type: "private", first_name: from.first_name },
      date: Math.floor(Date.now() / 1000),
      text,
      ...(command ? { entities: [{ type: "bot_command", offset: 0, length: command.length }] } : {}),
      ...extra,
    },
  };
}

/** A press of an inline button on the bot's plan message. */
export function buttonPress(from: TelegramUser, data: string, id: string) {
  return {
    callback_query: {
      id,
      from,
      chat_instance: "1",
      data,
      message: { message_id: 1, chat: { id: from.id, type: "private" }, date: 0, text: "plan" },
    },
  };
}

/** The text a recorded Bot API call sent ("" when it sent none). */
export const callText = (c: RecordedCall | undefined): string => String(c?.params.text ?? "");

/** The first line of the job's last message carrying its answer (💬), once the Worker has edited it in. */
export async function finalAnswerLine(tg: FakeTelegram, jobId: string): Promise<string> {
  const final = await waitFor(
    () =>
      tg.calls
        .filter((c) => c.method === "editMessageText" && callText(c).includes(jobId) && callText(c).startsWith("💬"))
        .at(-1),
    { what: "the final message with its answer", timeoutMs: 60_000 },
  );
  return callText(final).split("\n")[0] ?? "";
}
