// Telegram end to end on wrangler dev: a Worker wired to the Bot API stand-in (and, when given,
// the Messages API stand-in) with one paired agent, and real update JSON posted to its webhook.
import { expect } from "vitest";
import { type AgentProcess, startPairedAgent } from "./agent-process.ts";
import type { ApiClient } from "./api-client.ts";
import type { FakeAnthropic } from "./fake-anthropic.ts";
import type { FakeTelegram } from "./fake-telegram.ts";
import { type RunningWorker, startWorker } from "./wrangler-dev.ts";

export interface TelegramUser {
  id: number;
  is_bot: boolean;
  first_name: string;
  username?: string;
}

export interface TelegramStack {
  worker: RunningWorker;
  client: ApiClient;
  agent: AgentProcess;
  /** Posts one update as Telegram would, with the webhook secret; the Worker must take it (200). */
  post(update: Record<string, unknown>): Promise<void>;
  stop(): Promise<void>;
}

export async function startTelegramStack(opts: {
  tg: FakeTelegram;
  /** Without it the Worker has no key and plans and answers by the rules. */
  claude?: FakeAnthropic;
  secret: string;
  userId: number;
  workspace: string;
  name: string;
  allowShell?: boolean;
}): Promise<TelegramStack> {
  const { tg, claude } = opts;
  const worker = await startWorker({
    vars: {
      TELEGRAM_BOT_TOKEN: tg.token,
      TELEGRAM_WEBHOOK_SECRET: opts.secret,
      TELEGRAM_API_ROOT: tg.url,
      TELEGRAM_ALLOWED_USER_IDS: String(opts.userId),
      ...(claude ? { ANTHROPIC_API_KEY: claude.apiKey, ANTHROPIC_BASE_URL: claude.url } : {}),
    },
  });
  const { client, agent } = await startPairedAgent(worker, opts.name, {
    workspace: opts.workspace,
    allowShell: opts.allowShell,
    env: {},
    name: opts.name,
  });
  return {
    worker,
    client,
    agent,
    async post(update) {
      const res = await fetch(`${worker.url}/telegram/webhook`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": opts.secret },
        body: JSON.stringify({ update_id: updateId++, ...update }),
      });
      expect(res.status).toBe(200);
    },
    async stop() {
      await agent.stop();
      await worker.stop();
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
