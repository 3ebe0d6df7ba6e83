// Tells the person who asked about a job's progress: edits the job's Telegram message (the one
// that said "Planning…") into the plan, the progress and the final summary. Edits are throttled
// per job and identical texts are never re-sent. Jobs created through the API have no chat.
import { Api, GrammyError } from "grammy";
import { isTerminal, type JobView } from "../../protocol/index.ts";
import { renderJob } from "../bot/format.ts";
import { jobKeyboard } from "../bot/keyboards.ts";
import { loadConfig } from "../config.ts";
import { getDb, incrementCounter } from "../ledger/store.ts";
import { log } from "../lib/log.ts";
import { redactorFor } from "../lib/redact.ts";
import { chatSafety } from "./chat-safety.ts";

/** What was last sent for a job, kept in its JobDO so edits can be skipped or throttled. */
export interface NotifyMemo {
  lastText?: string;
  lastAt?: number;
  lastStatus?: string;
  messageId?: number;
  /** Telegram refused the chat for good (the user blocked the bot, the chat is gone): stop trying. */
  undeliverable?: string;
}

/** The /metrics counter of Telegram's permanent refusals, by error code. */
export const REFUSAL_COUNTER = "telegram_refusals:";

/** Refusals that are about the chat, not the message: nothing sent to it later can succeed. */
const CHAT_GONE =
  /bot was blocked by the user|user is deactivated|bot was kicked|chat not found|have no rights to send/i;

/** Telegram allows about one edit a second per chat; progress edits wait that long. */
export const EDIT_INTERVAL_MS = 1000;

/**
 * Thrown to have the outbox try again later. `retryAfterMs` is the earliest sensible retry:
 * what is left of the edit interval, or Telegram's `retry_after` on a 429.
 */
export class NotifyLater extends Error {
  readonly retryAfterMs: number;
  constructor(message: string, retryAfterMs: number) {
    super(message);
    this.name = "NotifyLater";
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * Sends or edits the job's Telegram message. Returns the new memo. Throwing makes the JobDO's
 * outbox retry later (with backoff): used for throttling and when Telegram asks to slow down;
 * by then the job's newest state is what gets rendered, so intermediate edits coalesce.
 */
export async function notifyJob(env: Env, job: JobView, memo: NotifyMemo): Promise<NotifyMemo> {
  if (!job.chatId) return memo;
  const config = loadConfig(env);
  if (!config.telegramBotToken) return memo;
  if (memo.undeliverable) return memo;
  const text = renderJob(job, { approvalTimeoutS: config.approvalTimeoutS });
  const markup = jobKeyboard(job);
  const key = `${text}\n${JSON.stringify(markup?.inline_keyboard ?? null)}`;
  if (memo.lastText === key) return memo;
  const now = Date.now();
  const sameStatus = memo.lastStatus === job.status;
  if (!isTerminal(job.status) && sameStatus && memo.lastAt && now - memo.lastAt < EDIT_INTERVAL_MS) {
    throw new NotifyLater("throttled: the last edit was under a second ago", EDIT_INTERVAL_MS - (now - memo.lastAt));
  }
  const api = new Api(config.telegramBotToken, { apiRoot: config.telegramApiRoot });
  api.config.use(chatSafety(redactorFor(env)));
  let messageId = memo.messageId ?? job.messageId ?? undefined;
  const options = { parse_mode: "HTML" as const, reply_markup: markup };
  try {
    if (messageId) {
      await api.editMessageText(job.chatId, messageId, text, options);
    } else {
      messageId = (await api.sendMessage(job.chatId, text, options)).message_id;
    }
  } catch (err) {
    if (!(err instanceof GrammyError)) throw err; // network: retry later
    if (err.error_code === 429) {
      const retryAfterS = err.parameters.retry_after ?? 1;
      throw new NotifyLater(`Telegram asked to slow down: ${err.description}`, retryAfterS * 1000);
    }
    if (err.error_code >= 500) throw err; // Telegram's side: retry later
    if (err.description.includes("message is not modified")) {
      // already showing this text
    } else if (/message to edit not found|message can't be edited/.test(err.description)) {
      messageId = (await api.sendMessage(job.chatId, text, options)).message_id;
    } else {
      // A permanent refusal: retrying the same call cannot succeed, so it is not retried; it is
      // logged as an error and counted in /metrics so it cannot go unnoticed.
      log("error", "telegram: refused the job's message", {
        jobId: job.id,
        code: err.error_code,
        error: err.description,
      });
      await incrementCounter(getDb(env.DB), `${REFUSAL_COUNTER}${err.error_code}`).catch(() => undefined);
      if (CHAT_GONE.test(err.description)) {
        return { lastText: key, lastAt: now, lastStatus: job.status, messageId, undeliverable: err.description };
      }
    }
  }
  return { lastText: key, lastAt: now, lastStatus: job.status, messageId };
}
