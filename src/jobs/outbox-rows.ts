// The outbox's table of items that failed (or were postponed): each in a row of its own, with
// its tries, backoff and parking (outbox.ts moves an item here from the state record). Created
// with the first such item, so a job whose effects all succeed has no table at all.
import { laneOf, type OutboxItem, type ParkedRow, REPORT_RETRY_MS } from "./outbox-items.ts";

/** A batch as the state record holds it (null where an item has left). */
export type Slots = (OutboxItem | null)[];

/** A row's payload is its item; one from before batches rode on the record holds a JSON array. */
export const isBatch = (payload: string) => payload.startsWith("[");
/** SQL: the row is a moved item (not an old batch row, which the record takes over). */
const MOVED = "substr(payload, 1, 1) <> '['";

export interface MovedRow {
  id: number;
  item: OutboxItem;
  tries: number;
  nextAt: number;
  parkedAt: number | null;
  reported: boolean;
}

export class OutboxRows {
  private readonly sql: SqlStorage;
  private exists: boolean;

  /** `exists` null: not known (an object from before the record said), so it is looked up. */
  constructor(sql: SqlStorage, exists: boolean | null) {
    this.sql = sql;
    this.exists =
      exists ??
      sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'outbox'").toArray().length > 0;
  }

  get created(): boolean {
    return this.exists;
  }

  /**
   * An object from before: its table gets the newer columns; returns its batch rows (id and
   * items) for the record to take over.
   */
  upgrade(): { id: number; items: Slots }[] {
    if (!this.exists) return [];
    const columns = new Set(
      this.sql
        .exec<{ name: string }>("PRAGMA table_info(outbox)")
        .toArray()
        .map((c) => c.name),
    );
    if (!columns.has("lane")) this.sql.exec("ALTER TABLE outbox ADD COLUMN lane TEXT");
    if (!columns.has("parked_at")) this.sql.exec("ALTER TABLE outbox ADD COLUMN parked_at INTEGER");
    if (!columns.has("reported")) this.sql.exec("ALTER TABLE outbox ADD COLUMN reported INTEGER NOT NULL DEFAULT 0");
    if (!columns.has("last_error")) this.sql.exec("ALTER TABLE outbox ADD COLUMN last_error TEXT");
    return this.sql
      .exec<{ id: number; payload: string }>("SELECT id, payload FROM outbox WHERE parked_at IS NULL ORDER BY id")
      .toArray()
      .filter((r) => isBatch(r.payload))
      .map((r) => ({ id: r.id, items: JSON.parse(r.payload) as Slots }));
  }

  private create(): void {
    if (this.exists) return;
    // No AUTOINCREMENT: it would write a sqlite_sequence row with every insert. Ids stay
    // ordered among the items present, which is all the lanes need.
    this.sql.exec(`CREATE TABLE IF NOT EXISTS outbox (
      id INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL,
      tries INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL DEFAULT 0, lane TEXT, parked_at INTEGER,
      reported INTEGER NOT NULL DEFAULT 0, last_error TEXT)`);
    this.exists = true;
  }

  maxId(): number {
    return this.exists ? (this.sql.exec<{ m: number | null }>("SELECT MAX(id) AS m FROM outbox").one().m ?? 0) : 0;
  }

  delete(id: number): void {
    this.sql.exec("DELETE FROM outbox WHERE id = ?", id);
  }

  /** An item moved out of its batch, at its position there. */
  insert(pos: number, item: OutboxItem, tries: number, nextAt: number, parkedAt: number | null, error: string | null) {
    this.create();
    this.sql.exec(
      "INSERT INTO outbox (id, kind, payload, lane, tries, next_at, parked_at, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      pos,
      item.kind,
      JSON.stringify(item),
      laneOf(item.kind),
      tries,
      nextAt,
      parkedAt,
      error,
    );
  }

  update(id: number, tries: number, nextAt: number, parkedAt: number | null, error: string | null): void {
    this.sql.exec(
      "UPDATE outbox SET tries = ?, next_at = ?, parked_at = ?, reported = 0, last_error = COALESCE(?, last_error) WHERE id = ?",
      tries,
      nextAt,
      parkedAt,
      error,
      id,
    );
  }

  /** Every moved item, in order (parked ones included). */
  all(): MovedRow[] {
    if (!this.exists) return [];
    return this.sql
      .exec<{
        id: number;
        payload: string;
        tries: number;
        next_at: number;
        parked_at: number | null;
        reported: number;
      }>(`SELECT id, payload, tries, next_at, parked_at, reported FROM outbox WHERE ${MOVED} ORDER BY id`)
      .toArray()
      .map((r) => ({
        id: r.id,
        item: JSON.parse(r.payload) as OutboxItem,
        tries: r.tries,
        nextAt: r.next_at,
        parkedAt: r.parked_at,
        reported: r.reported === 1,
      }));
  }

  /** The kinds of the items waiting untried (a postponed notification): what a new item coalesces into. */
  untriedKinds(): string[] {
    if (!this.exists) return [];
    return this.sql
      .exec<{ kind: string }>(`SELECT kind FROM outbox WHERE tries = 0 AND parked_at IS NULL AND ${MOVED}`)
      .toArray()
      .map((r) => r.kind);
  }

  parked(): ParkedRow[] {
    if (!this.exists) return [];
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
    if (!this.exists) return [];
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
    if (rows.length > 0)
      this.sql.exec(
        "UPDATE outbox SET parked_at = NULL, reported = 0, tries = 0, next_at = 0 WHERE parked_at IS NOT NULL",
      );
    return rows;
  }

  /** How many rows, and when the next is due (live items, and parked ones whose alert is owed). */
  pending(): { nextAt: number | null; size: number } {
    if (!this.exists) return { nextAt: null, size: 0 };
    const row = this.sql
      .exec<{ n: number | null; c: number }>(
        `SELECT MIN(CASE WHEN parked_at IS NULL OR reported = 0 THEN next_at END) AS n, COUNT(*) AS c FROM outbox WHERE ${MOVED}`,
      )
      .one();
    return { nextAt: row.n, size: row.c };
  }
}
