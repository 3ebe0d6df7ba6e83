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
} from "./outbox-items.ts";
import { OutboxRows, type Slots } from "./outbox-rows.ts";

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
  /** Writes the record now (stored() and hasTable() included), in the caller's transaction. */
  persist(): void;
}

export class Outbox {
  private readonly rows: OutboxRows;
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
  /** Batch rows of the table from before the record held them: deleted when the record is next written. */
  private legacy: number[] = [];

  constructor(sql: SqlStorage, host: OutboxHost, random: () => number = Math.random) {
    this.rows = new OutboxRows(sql, host.table);
    this.random = random;
    this.persist = host.persist;
    this.batches = host.batches.map((b) => ({ id: b.id, items: [...b.items] }));
    if (host.table === null) {
      const old = this.rows.upgrade();
      this.batches.push(...old);
      this.batches.sort((a, b) => a.id - b.id);
      this.legacy = old.map((b) => b.id);
    }
  }

  /** Whether the table of moved items exists (the record notes it, so no later instance looks it up). */
  hasTable(): boolean {
    return this.rows.created;
  }

  /**
   * The batches for the record being written, whose write drops the items done so far (and
   * any batch rows of the old table it takes over, in the same transaction).
   */
  stored(): StoredBatch[] {
    for (const id of this.legacy) this.rows.delete(id);
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
      this.maxId ??= Math.max(this.rows.maxId(), ...this.batches.map((b) => b.id));
      const id = (Math.floor(this.maxId / 2 ** ID_SHIFT) + 1) * 2 ** ID_SHIFT;
      this.batches.push({ id, items: owed.slice(i, i + BATCH_MAX) });
      this.maxId = id;
    }
  }

  private coalesce(items: OutboxItem[]): OutboxItem[] {
    if (!items.some((i) => COALESCED.has(i.kind))) return items;
    const pending = new Set<string>(this.rows.untriedKinds());
    for (const b of this.batches) {
      if (!this.inflight.has(b.id)) for (const i of b.items) if (i) pending.add(i.kind);
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
    for (const r of this.rows.all()) {
      if (r.parkedAt !== null) {
        if (!r.reported && r.nextAt <= now) this.alertOwed = true;
        continue;
      }
      items.push({ id: r.id, pos: r.id, item: r.item, tries: r.tries, batch: false, nextAt: r.nextAt });
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
    if (!this.leaveBatch(e)) this.rows.delete(e.id);
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
   * record is written now without them. That last write of a final job stays: its purge runs
   * days later on a fresh instance that knows only the record, and owed items there would be
   * performed again (D1 rows, an R2 put: dearer than the write) and hold the storage meanwhile
   * (test/final-clear.test.ts).
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
      this.rows.update(e.id, tries, nextAt, parkedAt, error);
      return;
    }
    this.leaveBatch(e);
    // No await between the two writes: the object's storage commits them together, so the
    // item is never in the record and a row at once (the rare path: an item that failed).
    this.rows.insert(e.pos, e.item, tries, nextAt, parkedAt, error);
    this.persist();
  }

  parked(): ParkedRow[] {
    return this.rows.parked();
  }

  /** Parked items whose alert is due (not yet delivered). */
  unreported(now: number): ParkedRow[] {
    // The last scan (due) saw none, and nothing was parked since.
    if (this.alertOwed === false) return [];
    return this.rows.unreported(now);
  }

  reportedNow(ids: number[]): void {
    this.rows.reportedNow(ids);
  }

  reportLater(ids: number[], now: number): void {
    this.rows.reportLater(ids, now);
  }

  /** Puts every parked item back in line with a fresh budget of tries; returns them. */
  replay(): ParkedRow[] {
    return this.rows.replay();
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
    const rows = this.rows.pending();
    const own = size > 0 ? 0 : null;
    const nextAt = own === null ? rows.nextAt : rows.nextAt === null ? own : Math.min(own, rows.nextAt);
    return { nextAt, size: size + rows.size };
  }

  /** The items owed, in order, as the drain would see them (tests and the ops view). */
  items(): { kind: OutboxItem["kind"]; tries: number; parked: boolean; nextAt: number }[] {
    const out: { pos: number; kind: OutboxItem["kind"]; tries: number; parked: boolean; nextAt: number }[] = [];
    for (const b of this.batches)
      b.items.forEach((item, i) => {
        if (item) out.push({ pos: b.id + i + 1, kind: item.kind, tries: 0, parked: false, nextAt: 0 });
      });
    for (const r of this.rows.all())
      out.push({ pos: r.id, kind: r.item.kind, tries: r.tries, parked: r.parkedAt !== null, nextAt: r.nextAt });
    return out.sort((a, b) => a.pos - b.pos).map(({ pos: _, ...rest }) => rest);
  }
}
