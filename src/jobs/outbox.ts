// The JobDO's outbox: side effects (ledger writes, queue sends, agent cancels, notifications)
// recorded in the same storage write as the state change, then performed. A failure leaves the
// item for the alarm to retry, so a D1 or queue hiccup loses nothing.
//
// A commit's effects ride on the state record (job-store.ts writes them with the state, one
// billed write for both): a batch of items, each performed once and dropped from the record by
// the next write. Performing one writes nothing: the record keeps a done item until then, so a
// restart may perform it again — harmless for all but the audit insert (every other effect is
// an upsert, keyed, or deduplicated: see effects.ts and the notify memo), so a pass that did one
// of those, or that leaves a final job (no commit follows), clears the record at its end.
//
// An item that fails is moved into a row of its own in the `outbox` table (created then), with
// its own tries, backoff and parking. It cannot wedge: retries back off with jitter, an item
// failing MAX_OUTBOX_TRIES times is parked (kept, reported once, replayable), and items wait
// only behind earlier items of their own lane — the ledger keeps its order per job, while a
// stuck archive upload or agent cancel holds back nothing else.
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
/** The one effect a restart must not perform twice (an insert with no key): see the header. */
const UNREPEATABLE: ReadonlySet<OutboxItem["kind"]> = new Set(["audit"]);
/**
 * A batch's id is the next multiple of 2^ID_SHIFT, so the positions of its items (id+1 …)
 * stay free for the rows an item is moved into, and ordered before any later commit's batch.
 */
const ID_SHIFT = 10;
const BATCH_MAX = 2 ** ID_SHIFT - 1;

type Slots = (OutboxItem | null)[];

/** A commit's items as the state record holds them (null where one has left). */
export interface StoredBatch {
  id: number;
  items: Slots;
}

/** What the outbox needs of the record it rides on (job-store.ts). */
export interface OutboxHost {
  /** The batches the record holds. */
  batches: readonly StoredBatch[];
  /** Whether the table of moved items exists (null: not known, an object from before the record said). */
  table: boolean | null;
  /** Writes the record now (batches() and hasTable() included), in the caller's transaction. */
  persist(): void;
}

/** A table row's payload is the moved item; one from before batches rode on the record, a JSON array. */
const isBatch = (payload: string) => payload.startsWith("[");
/** SQL: the row is a moved item (not an old batch row, which the record takes over). */
const MOVED = "substr(payload, 1, 1) <> '['";

export class Outbox {
  private readonly sql: SqlStorage;
  private readonly random: () => number;
  private readonly persist: () => void;
  /** The batches owed, in order; a slot is null once its item was done or moved to a row. */
  private batches: StoredBatch[];
  /** The record holds items done since it was written (the next write drops them). */
  private stale = false;
  /** …one of which must not run twice: the pass clears the record at its end. */
  private staleUnsafe = false;
  /** The batches the drain pass under way read: they act on an older snapshot, so nothing coalesces into them. */
  private readonly inflight = new Set<number>();
  /** Whether a parked item's alert may be owed (null: not known, ask the table). */
  private alertOwed: boolean | null = null;
  /** The highest id in use (read once: this object is the only writer). */
  private maxId: number | null = null;
  private table: boolean | null;
  /** Batch rows of the table from before the record held them: deleted when the record is next written. */
  private legacy: number[] = [];

  constructor(sql: SqlStorage, host: OutboxHost, random: () => number = Math.random) {
    this.sql = sql;
    this.random = random;
    this.persist = host.persist;
    this.batches = host.batches.map((b) => ({ id: b.id, items: [...b.items] }));
    this.table = host.table;
    if (this.table === null) {
      this.table =
        sql.exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'outbox'").toArray()
          .length > 0;
      if (this.table) this.upgrade();
    }
  }

  /** An object from before: its table gets the newer columns, its batch rows are taken onto the record. */
  private upgrade(): void {
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
    for (const r of this.sql.exec<{ id: number; payload: string }>(
      "SELECT id, payload FROM outbox WHERE parked_at IS NULL AND tries = 0 ORDER BY id",
    )) {
      if (!isBatch(r.payload)) continue;
      this.batches.push({ id: r.id, items: JSON.parse(r.payload) as Slots });
      this.legacy.push(r.id);
    }
    this.batches.sort((a, b) => a.id - b.id);
  }

  private createTable(): void {
    if (this.table) return;
    // No AUTOINCREMENT: it would write a sqlite_sequence row with every insert. Ids stay
    // ordered among the items present, which is all the lanes need.
    this.sql.exec(`CREATE TABLE IF NOT EXISTS outbox (
      id INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL,
      tries INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL DEFAULT 0, lane TEXT, parked_at INTEGER,
      reported INTEGER NOT NULL DEFAULT 0, last_error TEXT)`);
    this.table = true;
  }

  /** Whether the table of moved items exists (the record notes it, so no later instance looks it up). */
  hasTable(): boolean {
    return this.table === true;
  }

  /**
   * The batches for the record being written, whose write drops the items done so far (and
   * any batch rows of the old table it takes over, in the same transaction).
   */
  stored(): StoredBatch[] {
    for (const id of this.legacy) this.sql.exec("DELETE FROM outbox WHERE id = ?", id);
    this.legacy = [];
    this.batches = this.batches.filter((b) => b.items.some((i) => i !== null));
    this.stale = false;
    this.staleUnsafe = false;
    return this.batches.map((b) => ({ id: b.id, items: [...b.items] }));
  }

  /** Queues one item and writes the record with it (a commit queues its items with its state instead). */
  add(item: OutboxItem): void {
    this.addAll([item]);
  }

  addAll(items: OutboxItem[]): void {
    this.queue(items);
    this.persist();
  }

  /**
   * A commit's items as one batch, for the record the caller writes next. "ledger", "notify"
   * and "archive_log" are coalesced: left out when one is already pending and untried (they
   * act on the current state when performed).
   */
  queue(items: OutboxItem[]): void {
    const owed = this.coalesce(items);
    for (let i = 0; i < owed.length; i += BATCH_MAX) {
      const max = this.highestId();
      const id = (Math.floor(max / 2 ** ID_SHIFT) + 1) * 2 ** ID_SHIFT;
      this.batches.push({ id, items: owed.slice(i, i + BATCH_MAX) });
      this.maxId = id;
    }
  }

  private highestId(): number {
    if (this.maxId === null) {
      const row = this.table ? this.sql.exec<{ m: number | null }>("SELECT MAX(id) AS m FROM outbox").one().m : null;
      this.maxId = Math.max(row ?? 0, ...this.batches.map((b) => b.id));
    }
    return this.maxId;
  }

  private coalesce(items: OutboxItem[]): OutboxItem[] {
    if (!items.some((i) => COALESCED.has(i.kind))) return items;
    const pending = new Set<string>();
    for (const b of this.batches) {
      if (!this.inflight.has(b.id)) for (const i of b.items) if (i) pending.add(i.kind);
    }
    if (this.table) {
      for (const r of this.sql.exec<{ kind: string }>(
        `SELECT kind FROM outbox WHERE tries = 0 AND parked_at IS NULL AND ${MOVED}`,
      ))
        pending.add(r.kind);
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
   * with settle(). The table is read only when it exists (an item once failed); that scan also
   * notes whether a parked item's alert is owed, so most passes ask nothing more.
   */
  due(now: number, limit = 50): OutboxRow[] {
    const items: (OutboxRow & { nextAt: number })[] = [];
    for (const b of this.batches) {
      b.items.forEach((item, i) => {
        if (item) items.push({ id: b.id, pos: b.id + i + 1, item, tries: 0, batch: true, nextAt: 0 });
      });
    }
    this.alertOwed = false;
    if (this.table) {
      for (const r of this.sql.exec<{
        id: number;
        payload: string;
        tries: number;
        next_at: number;
        parked_at: number | null;
        reported: number;
      }>("SELECT id, payload, tries, next_at, parked_at, reported FROM outbox ORDER BY id")) {
        if (r.parked_at !== null) {
          if (r.reported === 0 && r.next_at <= now) this.alertOwed = true;
          continue;
        }
        if (isBatch(r.payload)) continue; // an old batch row, taken onto the record (upgrade)
        const item = JSON.parse(r.payload) as OutboxItem;
        items.push({ id: r.id, pos: r.id, item, tries: r.tries, batch: false, nextAt: r.next_at });
      }
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
        if (e.batch) this.inflight.add(e.id);
      }
    }
    return out;
  }

  /** The item was performed: a batch item leaves the record at its next write, a moved item's row goes now. */
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

  /**
   * Ends a drain pass. Items it performed stay in the record until its next write, unless one
   * must not run twice or no write is to be expected (`final`: the job has ended): then the
   * record is written now without them.
   */
  settle(final: boolean): void {
    this.inflight.clear();
    if (this.stale && (this.staleUnsafe || final)) this.persist();
  }

  /** Ends a pass whose storage is gone (deleted after retention): nothing is left to write. */
  forget(): void {
    this.inflight.clear();
    this.stale = false;
    this.staleUnsafe = false;
  }

  /** Takes a batch item out of its batch (the record drops it at its next write); false for a moved item. */
  private leaveBatch(e: OutboxRow): boolean {
    if (!e.batch) return false;
    const batch = this.batches.find((b) => b.id === e.id);
    if (batch) batch.items[e.pos - e.id - 1] = null;
    this.stale = true;
    if (UNREPEATABLE.has(e.item.kind)) this.staleUnsafe = true;
    return true;
  }

  /** A failed or postponed item's own row; a batch item leaves the record in the same transaction. */
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
    this.createTable();
    this.leaveBatch(e);
    // No await between the two writes: the object's storage commits them together, so the
    // item is never in the record and a row at once (the rare path: an item that failed).
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
    this.persist();
  }

  parked(): ParkedRow[] {
    if (!this.table) return [];
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
    // The last scan (due) saw none, and nothing was parked since; or nothing ever failed.
    if (this.alertOwed === false || !this.table) return [];
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

  /** When the alarm is next needed: live items, and parked ones whose alert is still owed. */
  nextAt(): number | null {
    return this.pending().nextAt;
  }

  size(): number {
    return this.pending().size;
  }

  /** Items owed (on the record and in rows, parked ones included), and when the next is due. */
  pending(): { nextAt: number | null; size: number } {
    let size = 0;
    for (const b of this.batches) for (const i of b.items) if (i) size++;
    let nextAt: number | null = size > 0 ? 0 : null;
    if (this.table) {
      const row = this.sql
        .exec<{ n: number | null; c: number }>(
          `SELECT MIN(CASE WHEN parked_at IS NULL OR reported = 0 THEN next_at END) AS n, COUNT(*) AS c FROM outbox WHERE ${MOVED}`,
        )
        .one();
      size += row.c;
      if (row.n !== null) nextAt = nextAt === null ? row.n : Math.min(nextAt, row.n);
    }
    return { nextAt, size };
  }

  /** The items owed, in order, as the drain would see them (tests and the ops view). */
  items(): { kind: OutboxItem["kind"]; tries: number; parked: boolean; nextAt: number }[] {
    const out: { pos: number; kind: OutboxItem["kind"]; tries: number; parked: boolean; nextAt: number }[] = [];
    for (const b of this.batches)
      b.items.forEach((item, i) => {
        if (item) out.push({ pos: b.id + i + 1, kind: item.kind, tries: 0, parked: false, nextAt: 0 });
      });
    if (this.table)
      for (const r of this.sql.exec<{
        id: number;
        kind: string;
        tries: number;
        parked_at: number | null;
        next_at: number;
      }>(`SELECT id, kind, tries, parked_at, next_at FROM outbox WHERE ${MOVED} ORDER BY id`))
        out.push({
          pos: r.id,
          kind: r.kind as OutboxItem["kind"],
          tries: r.tries,
          parked: r.parked_at !== null,
          nextAt: r.next_at,
        });
    return out.sort((a, b) => a.pos - b.pos).map(({ pos: _, ...rest }) => rest);
  }
}
