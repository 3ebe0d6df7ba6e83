// The JobDO's outbox: side effects (ledger writes, queue sends, agent cancels, notifications)
// recorded in the same storage transaction as the state change, then performed and deleted.
// A failure leaves the row for the alarm to retry, so a D1 or queue hiccup loses nothing.
export type OutboxItem =
  | { kind: "ledger" }
  | {
      kind: "event";
      seq: number;
      fromStatus: string | null;
      toStatus: string;
      event: string;
      detail: Record<string, unknown> | null;
      at: number;
    }
  | { kind: "audit"; actor: string; action: string; detail: Record<string, unknown>; at: number }
  | { kind: "enqueue"; attempt: number }
  | { kind: "cancel_agent"; attempt: number; reason: string }
  | { kind: "archive_log" }
  /** The job's answer, written once it ended, before its final notification. */
  | { kind: "answer" }
  | { kind: "notify" };

export interface OutboxRow {
  id: number;
  item: OutboxItem;
  tries: number;
}

export class Outbox {
  private readonly sql: SqlStorage;
  /** The row being performed right now: it acts on an older snapshot, so nothing coalesces into it. */
  inflight: number | null = null;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS outbox (
      id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, payload TEXT NOT NULL,
      tries INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL DEFAULT 0)`);
  }

  /** Adds an item; "ledger", "notify" and "archive_log" are coalesced (they act on the current state). */
  add(item: OutboxItem): void {
    if (item.kind === "ledger" || item.kind === "notify" || item.kind === "archive_log") {
      const pending = this.sql
        .exec("SELECT 1 FROM outbox WHERE kind = ? AND tries = 0 AND id <> ?", item.kind, this.inflight ?? -1)
        .toArray();
      if (pending.length > 0) return;
    }
    this.sql.exec("INSERT INTO outbox (kind, payload) VALUES (?, ?)", item.kind, JSON.stringify(item));
  }

  due(now: number, limit = 50): OutboxRow[] {
    return this.sql
      .exec<{ id: number; payload: string; tries: number }>(
        "SELECT id, payload, tries FROM outbox WHERE next_at <= ? ORDER BY id LIMIT ?",
        now,
        limit,
      )
      .toArray()
      .map((r) => ({ id: r.id, item: JSON.parse(r.payload) as OutboxItem, tries: r.tries }));
  }

  done(id: number): void {
    this.sql.exec("DELETE FROM outbox WHERE id = ?", id);
  }

  /** Backs off exponentially: 1 s, 2 s, 4 s … capped at 5 minutes. */
  failed(id: number, tries: number, now: number): void {
    const delay = Math.min(1000 * 2 ** tries, 5 * 60_000);
    this.sql.exec("UPDATE outbox SET tries = tries + 1, next_at = ? WHERE id = ?", now + delay, id);
  }

  /** Moves an item later without counting a failure (a throttled notification). */
  postpone(id: number, at: number): void {
    this.sql.exec("UPDATE outbox SET next_at = ? WHERE id = ?", at, id);
  }

  nextAt(): number | null {
    const row = this.sql.exec<{ n: number | null }>("SELECT MIN(next_at) AS n FROM outbox").one();
    return row.n;
  }

  size(): number {
    return this.sql.exec<{ c: number }>("SELECT COUNT(*) AS c FROM outbox").one().c;
  }
}
