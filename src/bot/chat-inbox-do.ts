// ChatInboxDO: one per chat (named by chatKeyOf). The webhook hands it an update, it stores the
// update and answers at once, so Telegram gets its 200 without waiting for the bot's replies.
// The object then runs its chat's updates through grammY one at a time, in arrival order: an
// explicit in-memory chain, because input gates do not serialise two handlers that each await
// outside I/O (D1, the Bot API). A stored update is deleted once handled; one left by an
// eviction or restart is resumed by the alarm, so nothing is lost and replies keep their order.
import { DurableObject } from "cloudflare:workers";
import type { Bot } from "grammy";
import type { Update } from "grammy/types";
import { loadConfig } from "../config.ts";
import { getDb, incrementCounter } from "../ledger/store.ts";
import { errorMessage, log } from "../lib/log.ts";
import { createBot } from "./bot.ts";

/** The /metrics counter of updates whose handler threw (skynet_webhook_errors_total). */
export const WEBHOOK_ERRORS = "webhook_errors";

/** Telegram redelivers an update it got no 200 for; the last ids seen per chat are remembered. */
export const SEEN_WINDOW = 1000;
/** Starts of one update (evictions mid-handler) before it is given up and counted as failed. */
export const MAX_TRIES = 3;
/** The backstop: if the object is evicted with updates stored, the alarm resumes them. */
const RESUME_AFTER_MS = 30_000;
/** A handler stuck this long (a hung Bot API call) no longer holds up the chat's later updates. */
const HANDLER_TIMEOUT_MS = 60_000;

export type Delivery = "queued" | "duplicate";

type Stored = {
  seq: number;
  update_id: number;
  body: string;
  origin: string;
  tries: number;
};

export class ChatInboxDO extends DurableObject<Env> {
  private running = false;
  /** An alarm is already set by this instance: one alarm write, not one per update. */
  private armed = false;
  private chain: Promise<void> = Promise.resolve();
  /** A drain scheduled by deliver, not started yet. */
  private soon: Promise<void> | null = null;
  private readonly bots = new Map<string, Bot>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS inbox (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      update_id INTEGER NOT NULL,
      body TEXT NOT NULL,
      origin TEXT NOT NULL,
      tries INTEGER NOT NULL DEFAULT 0)`);
    // n counts arrivals, so keeping the last SEEN_WINDOW is one indexed delete per update.
    sql.exec(
      "CREATE TABLE IF NOT EXISTS seen (n INTEGER PRIMARY KEY AUTOINCREMENT, update_id INTEGER NOT NULL UNIQUE)",
    );
  }

  /**
   * Stores a validated update (its JSON text) and has it handled after those before it. The
   * handling starts on a later turn: started here, its first slice of CPU (the JSON, grammY's
   * middleware up to its first I/O) ran before this call answered, i.e. inside the webhook's time.
   */
  async deliver(updateId: number, body: string, origin: string): Promise<Delivery> {
    const delivery = this.store(updateId, body, origin);
    if (delivery === "queued") this.kickSoon();
    return delivery;
  }

  /** Stores without handling: the state an eviction between store and handle leaves behind. */
  store(updateId: number, body: string, origin: string): Delivery {
    const sql = this.ctx.storage.sql;
    const fresh = sql
      .exec<{ n: number }>("INSERT INTO seen (update_id) VALUES (?) ON CONFLICT DO NOTHING RETURNING n", updateId)
      .toArray()[0];
    if (!fresh) return "duplicate";
    sql.exec("DELETE FROM seen WHERE n <= ?", fresh.n - SEEN_WINDOW);
    sql.exec("INSERT INTO inbox (update_id, body, origin) VALUES (?, ?, ?)", updateId, body, origin);
    if (!this.armed) {
      this.armed = true;
      void this.ctx.storage.setAlarm(Date.now() + RESUME_AFTER_MS);
    }
    return "queued";
  }

  /** Resolves once every stored update has been handled; the number still stored (0 when idle). */
  async settled(): Promise<number> {
    await this.soon;
    await this.chain;
    return this.pending();
  }

  override async alarm(): Promise<void> {
    this.armed = false;
    this.kick();
    await this.chain;
    if (this.pending() > 0 && !this.armed) {
      this.armed = true;
      await this.ctx.storage.setAlarm(Date.now() + RESUME_AFTER_MS);
    }
  }

  private pending(): number {
    const row = this.ctx.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM inbox").one();
    return row.n;
  }

  private kickSoon(): void {
    if (this.running || this.soon) return;
    this.soon = new Promise((resolve) =>
      setTimeout(() => {
        this.soon = null;
        this.kick();
        resolve();
      }, 0),
    );
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    this.chain = this.drain();
  }

  private async drain(): Promise<void> {
    try {
      for (;;) {
        const next = this.ctx.storage.sql
          .exec<Stored>("SELECT seq, update_id, body, origin, tries FROM inbox ORDER BY seq LIMIT 1")
          .toArray()[0];
        if (!next) return;
        await this.handle(next);
      }
    } catch (e) {
      // Storage itself failed: the alarm resumes what is left.
      log("error", "telegram: chat inbox stopped", { error: errorMessage(e) });
    } finally {
      this.running = false;
    }
  }

  private async handle(row: Stored): Promise<void> {
    const sql = this.ctx.storage.sql;
    if (row.tries >= MAX_TRIES) {
      log("error", "telegram: update given up after repeated restarts", { updateId: row.update_id, tries: row.tries });
      await this.countFailure();
      sql.exec("DELETE FROM inbox WHERE seq = ?", row.seq);
      return;
    }
    // Counted before the handler starts, so an eviction mid-handler counts as a try.
    sql.exec("UPDATE inbox SET tries = tries + 1 WHERE seq = ?", row.seq);
    try {
      // The JSON was checked by the webhook's envelope schema before it was stored.
      const update = JSON.parse(row.body) as Update;
      await withTimeout(this.botFor(row.origin).handleUpdate(update), HANDLER_TIMEOUT_MS);
    } catch (e) {
      // A poison update is not retried (its side effects may have happened): counted, dropped.
      log("error", "telegram: update failed", { updateId: row.update_id, error: errorMessage(e) });
      await this.countFailure();
    }
    sql.exec("DELETE FROM inbox WHERE seq = ?", row.seq);
  }

  private botFor(origin: string): Bot {
    let bot = this.bots.get(origin);
    if (!bot) {
      bot = createBot({ env: this.env, config: loadConfig(this.env), origin });
      this.bots.set(origin, bot);
    }
    return bot;
  }

  private async countFailure(): Promise<void> {
    await incrementCounter(getDb(this.env.DB), WEBHOOK_ERRORS).catch(() => undefined);
  }
}

async function withTimeout(work: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the handler took longer than ${ms} ms`)), ms);
  });
  try {
    await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
