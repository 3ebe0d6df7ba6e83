// The JobDO's outbox: side effects (ledger writes, queue sends, agent cancels, notifications)
// recorded in the same storage transaction as the state change, then performed and deleted.
// A failure leaves the row for the alarm to retry, so a D1 or queue hiccup loses nothing.
//
// It cannot wedge: retries back off with jitter, an item failing MAX_OUTBOX_TRIES times is
// parked (kept here, reported once, replayable), and items wait only behind earlier items of
// their own lane — the ledger keeps its order per job, while a stuck archive upload or agent
// cancel holds back nothing else.
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
      /** The latency this event ends, for the /metrics histograms (absent: none, or an older item). */
      measure?: { histogram: "dispatch" | "duration"; ms: number } | null;
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

export interface ParkedRow {
  id: number;
  kind: OutboxItem["kind"];
  tries: number;
  error: string | null;
  parkedAt: number;
  reported: boolean;
}

/** Failures after which an item is parked: about 13 minutes of retries at the backoff below. */
export const MAX_OUTBOX_TRIES = 10;
const BASE_DELAY_MS = 1000;
const MAX_DELAY_MS = 5 * 60_000;
/** How soon a parked item whose alert could not be sent is reported again. */
export const REPORT_RETRY_MS = 5 * 60_000;

/**
 * Items of one lane run in order, each after the one before it; lanes do not wait for each
 * other. A notification renders the current state, so it depends on nothing (no lane).
 */
export function laneOf(kind: OutboxItem["kind"]): string | null {
  switch (kind) {
    case "ledger":
    case "event":
    case "audit":
      return "ledger";
    case "enqueue":
    case "cancel_agent":
      return "agent"; // the old attempt's cancel goes before the new attempt's send
    case "archive_log":
      return "archive";
    case "notify":
    case "answer": // it commits its own notify and ledger row when written
      return null;
  }
}

/** Exponential backoff (1 s, 2 s, 4 s … capped at 5 min), each delay jittered to 50–100 %. */
export function backoffMs(tries: number, random: () => number = Math.random): number {
  const full = Math.min(BASE_DELAY_MS * 2 ** tries, MAX_DELAY_MS);
  return Math.round(full * (0.5 + 0.5 * random()));
}

export class Outbox {
  private readonly sql: SqlStorage;
  private readonly random: () => number;
  /** The row being performed right now: it acts on an older snapshot, so nothing coalesces into it. */
  inflight: number | null = null;
  /** Whether a parked item's alert may be owed (null: not known, ask the table). */
  private alertOwed: boolean | null = null;

  constructor(sql: SqlStorage, random: () => number = Math.random) {
    this.sql = sql;
    this.random = random;
    const existing = sql
      .exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'outbox'")
      .toArray()[0];
    if (!existing) {
      // No AUTOINCREMENT: it would write a sqlite_sequence row with every item. Ids stay ordered
      // among the rows present, which is all the lanes need.
      sql.exec(`CREATE TABLE outbox (
        id INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL DEFAULT 0, lane TEXT, parked_at INTEGER,
        reported INTEGER NOT NULL DEFAULT 0, last_error TEXT)`);
      return;
    }
    // Objects created before lanes and parking existed get the columns on first use.
    const columns = new Set(
      sql
        .exec<{ name: string }>("PRAGMA table_info(outbox)")
        .toArray()
        .map((c) => c.name),
    );
    if (!columns.has("lane")) sql.exec("ALTER TABLE outbox ADD COLUMN lane TEXT");
    if (!columns.has("parked_at")) sql.exec("ALTER TABLE outbox ADD COLUMN parked_at INTEGER");
    if (!columns.has("reported")) sql.exec("ALTER TABLE outbox ADD COLUMN reported INTEGER NOT NULL DEFAULT 0");
    if (!columns.has("last_error")) sql.exec("ALTER TABLE outbox ADD COLUMN last_error TEXT");
  }

  /** Adds an item; "ledger", "notify" and "archive_log" are coalesced (they act on the current state). */
  add(item: OutboxItem): void {
    if (item.kind === "ledger" || item.kind === "notify" || item.kind === "archive_log") {
      const pending = this.sql
        .exec(
          "SELECT 1 FROM outbox WHERE kind = ? AND tries = 0 AND parked_at IS NULL AND id <> ?",
          item.kind,
          this.inflight ?? -1,
        )
        .toArray();
      if (pending.length > 0) return;
    }
    this.sql.exec(
      "INSERT INTO outbox (kind, payload, lane) VALUES (?, ?, ?)",
      item.kind,
      JSON.stringify(item),
      laneOf(item.kind),
    );
  }

  /**
   * Items due now whose lane has nothing earlier still backing off (parked items hold back
   * nobody). The caller stops a lane at its first failure within one pass. One scan of the
   * table (the lanes are worked out here, not by a correlated subquery that reads it per row);
   * it also notes whether a parked item's alert is owed, so most passes ask nothing more.
   */
  due(now: number, limit = 50): OutboxRow[] {
    const rows = this.sql
      .exec<{
        id: number;
        payload: string;
        tries: number;
        lane: string | null;
        next_at: number;
        parked_at: number | null;
        reported: number;
      }>("SELECT id, payload, tries, lane, next_at, parked_at, reported FROM outbox ORDER BY id")
      .toArray();
    const waiting = new Set<string>();
    const out: OutboxRow[] = [];
    this.alertOwed = false;
    for (const r of rows) {
      if (r.parked_at !== null) {
        if (r.reported === 0 && r.next_at <= now) this.alertOwed = true;
        continue;
      }
      const blocked = r.lane !== null && waiting.has(r.lane);
      if (r.next_at > now) {
        if (r.lane !== null) waiting.add(r.lane);
        continue;
      }
      if (!blocked && out.length < limit)
        out.push({ id: r.id, item: JSON.parse(r.payload) as OutboxItem, tries: r.tries });
    }
    return out;
  }

  done(id: number): void {
    this.sql.exec("DELETE FROM outbox WHERE id = ?", id);
  }

  /** Counts a failure: backs off (jittered), or parks the item once it has failed too often. */
  failed(id: number, tries: number, now: number, error = ""): "retry" | "parked" {
    if (tries + 1 >= MAX_OUTBOX_TRIES) {
      this.alertOwed = true;
      this.sql.exec(
        "UPDATE outbox SET tries = tries + 1, parked_at = ?, reported = 0, next_at = ?, last_error = ? WHERE id = ?",
        now,
        now,
        error.slice(0, 500),
        id,
      );
      return "parked";
    }
    this.sql.exec(
      "UPDATE outbox SET tries = tries + 1, next_at = ?, last_error = ? WHERE id = ?",
      now + backoffMs(tries, this.random),
      error.slice(0, 500),
      id,
    );
    return "retry";
  }

  /** Moves an item later without counting a failure (a throttled notification). */
  postpone(id: number, at: number): void {
    this.sql.exec("UPDATE outbox SET next_at = ? WHERE id = ?", at, id);
  }

  parked(): ParkedRow[] {
    return this.sql
      .exec<{
        id: number;
        kind: string;
        tries: number;
        last_error: string | null;
        parked_at: number;
        reported: number;
      }>("SELECT id, kind, tries, last_error, parked_at, reported FROM outbox WHERE parked_at IS NOT NULL ORDER BY id")
      .toArray()
      .map((r) => ({
        id: r.id,
        kind: r.kind as OutboxItem["kind"],
        tries: r.tries,
        error: r.last_error,
        parkedAt: r.parked_at,
        reported: r.reported === 1,
      }));
  }

  /** Parked items whose alert is due (not yet delivered). */
  unreported(now: number): ParkedRow[] {
    // The last scan (due) saw none, and nothing was parked since.
    if (this.alertOwed === false) return [];
    const due = new Set(
      this.sql
        .exec<{ id: number }>(
          "SELECT id FROM outbox WHERE parked_at IS NOT NULL AND reported = 0 AND next_at <= ?",
          now,
        )
        .toArray()
        .map((r) => r.id),
    );
    return this.parked().filter((p) => due.has(p.id));
  }

  reportedNow(ids: number[]): void {
    for (const id of ids) this.sql.exec("UPDATE outbox SET reported = 1 WHERE id = ?", id);
  }

  reportLater(ids: number[], now: number): void {
    for (const id of ids) this.sql.exec("UPDATE outbox SET next_at = ? WHERE id = ?", now + REPORT_RETRY_MS, id);
  }

  /** Puts every parked item back in line with a fresh budget of tries; returns them. */
  replay(): ParkedRow[] {
    const rows = this.parked();
    this.sql.exec(
      "UPDATE outbox SET parked_at = NULL, reported = 0, tries = 0, next_at = 0 WHERE parked_at IS NOT NULL",
    );
    return rows;
  }

  /** When the alarm is next needed: live items, and parked ones whose alert is still owed. */
  nextAt(): number | null {
    return this.pending().nextAt;
  }

  size(): number {
    return this.sql.exec<{ c: number }>("SELECT COUNT(*) AS c FROM outbox").one().c;
  }

  /** nextAt and size in one scan (what the alarm is armed from). */
  pending(): { nextAt: number | null; size: number } {
    const row = this.sql
      .exec<{ n: number | null; c: number }>(
        "SELECT MIN(CASE WHEN parked_at IS NULL OR reported = 0 THEN next_at END) AS n, COUNT(*) AS c FROM outbox",
      )
      .one();
    return { nextAt: row.n, size: row.c };
  }
}
