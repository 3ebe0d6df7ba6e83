// The JobDO's outbox: side effects (ledger writes, queue sends, agent cancels, notifications)
// recorded in the same storage transaction as the state change, then performed and deleted.
// A failure leaves the item for the alarm to retry, so a D1 or queue hiccup loses nothing.
//
// One row per commit holds all of its effects (each row is a billed write, twice: its insert
// and its delete); the drain performs them and rewrites or deletes the row once per pass. An
// item that fails is moved into a row of its own, with its own tries, backoff and parking.
//
// It cannot wedge: retries back off with jitter, an item failing MAX_OUTBOX_TRIES times is
// parked (kept here, reported once, replayable), and items wait only behind earlier items of
// their own lane — the ledger keeps its order per job, while a stuck archive upload or agent
// cancel holds back nothing else.
import {
  backoffMs,
  laneOf,
  MAX_OUTBOX_TRIES,
  type OutboxItem,
  type OutboxRow,
  type ParkedRow,
  REPORT_RETRY_MS,
} from "./outbox-items.ts";

/** Items that act on the current state: one pending is enough. */
const COALESCED: ReadonlySet<OutboxItem["kind"]> = new Set(["ledger", "notify", "archive_log"]);
/**
 * A batch row's id is the next multiple of 2^ID_SHIFT, so the positions of its items (id+1 …)
 * stay free for the rows an item is moved into, and ordered before any later commit's row.
 */
const ID_SHIFT = 10;
const BATCH_MAX = 2 ** ID_SHIFT - 1;

type Slots = (OutboxItem | null)[];

/** A batch row's payload is a JSON array of its items (null where one has left); a moved item's, the item. */
const isBatch = (payload: string) => payload.startsWith("[");
const kindsOf = (slots: Slots) =>
  slots
    .filter((i) => i !== null)
    .map((i) => i.kind)
    .join(",");

export class Outbox {
  private readonly sql: SqlStorage;
  private readonly random: () => number;
  /**
   * The rows the drain pass under way read (settle() ends it): they act on an older snapshot,
   * so nothing coalesces into them; for batch rows, the items still owed, kept here so the
   * row is written once at the end of the pass, not once per item.
   */
  private readonly inflight = new Map<number, { slots: Slots; dirty: boolean } | null>();
  /** Whether a parked item's alert may be owed (null: not known, ask the table). */
  private alertOwed: boolean | null = null;
  /** The highest id in the table (read once: this object is the table's only writer). */
  private maxId: number | null = null;

  /** `knownEmpty`: the object stores nothing yet (a new job), so there is no table to look for. */
  constructor(sql: SqlStorage, random: () => number = Math.random, knownEmpty = false) {
    this.sql = sql;
    this.random = random;
    const existing = knownEmpty
      ? undefined
      : sql
          .exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'outbox'")
          .toArray()[0];
    if (!existing) {
      // No AUTOINCREMENT: it would write a sqlite_sequence row with every commit. Ids stay
      // ordered among the rows present, which is all the lanes need.
      sql.exec(`CREATE TABLE IF NOT EXISTS outbox (
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

  add(item: OutboxItem): void {
    this.addAll([item]);
  }

  /**
   * A commit's items as one row. "ledger", "notify" and "archive_log" are coalesced: left out
   * when one is already pending and untried (they act on the current state when performed).
   */
  addAll(items: OutboxItem[]): void {
    const owed = this.coalesce(items);
    for (let i = 0; i < owed.length; i += BATCH_MAX) {
      const slots = owed.slice(i, i + BATCH_MAX);
      this.maxId ??= this.sql.exec<{ m: number | null }>("SELECT MAX(id) AS m FROM outbox").one().m ?? 0;
      const id = (Math.floor(this.maxId / 2 ** ID_SHIFT) + 1) * 2 ** ID_SHIFT;
      this.sql.exec(
        "INSERT INTO outbox (id, kind, payload) VALUES (?, ?, ?)",
        id,
        kindsOf(slots),
        JSON.stringify(slots),
      );
      this.maxId = id;
    }
  }

  private coalesce(items: OutboxItem[]): OutboxItem[] {
    if (!items.some((i) => COALESCED.has(i.kind))) return items;
    const pending = new Set<string>();
    // Kinds from the kind column (a batch row's lists its items'), not the payloads.
    for (const r of this.sql.exec<{ id: number; kind: string }>(
      "SELECT id, kind FROM outbox WHERE tries = 0 AND parked_at IS NULL",
    )) {
      if (!this.inflight.has(r.id)) for (const k of r.kind.split(",")) pending.add(k);
    }
    return items.filter((i) => {
      if (!COALESCED.has(i.kind)) return true;
      if (pending.has(i.kind)) return false;
      pending.add(i.kind);
      return true;
    });
  }

  /**
   * Items due now whose lane has nothing earlier still backing off (parked items hold back
   * nobody). The caller stops a lane at its first failure within one pass, and ends the pass
   * with settle(). One scan of the table; it also notes whether a parked item's alert is owed,
   * so most passes ask nothing more.
   */
  due(now: number, limit = 50): OutboxRow[] {
    const rows = this.sql
      .exec<{
        id: number;
        payload: string;
        tries: number;
        next_at: number;
        parked_at: number | null;
        reported: number;
      }>("SELECT id, payload, tries, next_at, parked_at, reported FROM outbox ORDER BY id")
      .toArray();
    const items: (OutboxRow & { nextAt: number })[] = [];
    const slotsOf = new Map<number, Slots>();
    this.alertOwed = false;
    for (const r of rows) {
      if (r.parked_at !== null) {
        if (r.reported === 0 && r.next_at <= now) this.alertOwed = true;
        continue;
      }
      if (!isBatch(r.payload)) {
        const item = JSON.parse(r.payload) as OutboxItem;
        items.push({ id: r.id, pos: r.id, item, tries: r.tries, batch: false, nextAt: r.next_at });
        continue;
      }
      const slots = JSON.parse(r.payload) as Slots;
      slotsOf.set(r.id, slots);
      slots.forEach((item, i) => {
        if (item) items.push({ id: r.id, pos: r.id + i + 1, item, tries: 0, batch: true, nextAt: r.next_at });
      });
    }
    items.sort((a, b) => a.pos - b.pos);
    const waiting = new Set<string>();
    const out: OutboxRow[] = [];
    for (const { nextAt, ...e } of items) {
      const lane = laneOf(e.item.kind);
      const blocked = lane !== null && waiting.has(lane);
      if (nextAt > now) {
        if (lane !== null) waiting.add(lane);
        continue;
      }
      if (!blocked && out.length < limit) {
        out.push(e);
        const slots = slotsOf.get(e.id);
        if (!this.inflight.has(e.id)) this.inflight.set(e.id, slots ? { slots, dirty: false } : null);
      }
    }
    return out;
  }

  /** The item was performed: a moved item's row goes now, a batch row's at settle(). */
  done(e: OutboxRow): void {
    if (!this.leaveBatch(e)) this.sql.exec("DELETE FROM outbox WHERE id = ?", e.id);
  }

  /** Counts a failure: backs off (jittered), or parks the item once it has failed too often. */
  failed(e: OutboxRow, now: number, error = ""): "retry" | "parked" {
    const park = e.tries + 1 >= MAX_OUTBOX_TRIES;
    if (park) this.alertOwed = true;
    const nextAt = park ? now : now + backoffMs(e.tries, this.random);
    this.moveOut(e, e.tries + 1, nextAt, park ? now : null, error.slice(0, 500));
    return park ? "parked" : "retry";
  }

  /** Moves an item later without counting a failure (a throttled notification). */
  postpone(e: OutboxRow, at: number): void {
    this.moveOut(e, e.tries, at, null, null);
  }

  /** Ends a drain pass: each batch row it worked on is rewritten with what is left, or deleted. */
  settle(): void {
    for (const [id, batch] of this.inflight) if (batch?.dirty) this.writeBatch(id, batch.slots);
    this.inflight.clear();
  }

  /** Ends a pass whose storage is gone (deleted after retention): nothing is left to write. */
  forget(): void {
    this.inflight.clear();
  }

  /** Takes a batch item out of its row's slots (the row is written later); false for a moved item. */
  private leaveBatch(e: OutboxRow): boolean {
    if (!e.batch) return false;
    const batch = this.inflight.get(e.id);
    if (batch) {
      batch.slots[e.pos - e.id - 1] = null;
      batch.dirty = true;
    }
    return true;
  }

  /** A failed or postponed item's own row; a batch item leaves its row in the same transaction. */
  private moveOut(e: OutboxRow, tries: number, nextAt: number, parkedAt: number | null, error: string | null) {
    if (!e.batch) {
      this.sql.exec(
        "UPDATE outbox SET tries = ?, next_at = ?, parked_at = ?, reported = 0, last_error = COALESCE(?, last_error) WHERE id = ?",
        tries,
        nextAt,
        parkedAt,
        error,
        e.id,
      );
      return;
    }
    this.leaveBatch(e);
    const batch = this.inflight.get(e.id);
    // No await between the two writes: the object's storage commits them together.
    this.sql.exec(
      "INSERT INTO outbox (id, kind, payload, lane, tries, next_at, parked_at, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      e.pos,
      e.item.kind,
      JSON.stringify(e.item),
      laneOf(e.item.kind),
      tries,
      nextAt,
      parkedAt,
      error,
    );
    // Written at once (not at settle), so the item is never in two rows.
    if (batch) this.writeBatch(e.id, batch.slots);
  }

  private writeBatch(id: number, slots: Slots): void {
    if (slots.every((s) => s === null)) this.sql.exec("DELETE FROM outbox WHERE id = ?", id);
    else
      this.sql.exec("UPDATE outbox SET kind = ?, payload = ? WHERE id = ?", kindsOf(slots), JSON.stringify(slots), id);
    const batch = this.inflight.get(id);
    if (batch) batch.dirty = false;
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
