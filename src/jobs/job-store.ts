// The JobContext of one JobDO over its storage: the state record under key "job" (the state, the
// effects its commits still owe, and the log while it is small), the tables a job may outgrow it
// into, the operation counters, the memos. Only this module writes "job": one write per commit
// stores the state, its effects and any log appended since.
//
// The state is kept in memory as well: the object is single-threaded and this module is the
// only writer, so the copy cannot go stale, and each request and step reads it without a
// storage read. load() gives a clone (as a storage read would give), so a change not committed
// changes nothing; peek() gives the frozen cached state itself, for readers (no copy).

import type { Config } from "../config.ts";
import type { JobEvent } from "../core/job-machine.ts";
import { deepFreeze } from "../lib/freeze.ts";
import { redactorFor } from "../lib/redact.ts";
import { type JobContext, LIVENESS_FIELDS, type LivenessPatch, type MemoKey } from "./job-context.ts";
import { type JobState, ledgerContent } from "./job-state.ts";
import { LogBuffer, type LogRow } from "./log-buffer.ts";
import { Outbox, type StoredBatch } from "./outbox.ts";
import type { OutboxItem } from "./outbox-items.ts";
import { move } from "./transitions.ts";

/**
 * The cached state is frozen, deeply: peek() hands it out without a copy, and a caller that
 * tried to change it would throw rather than change what the next reader sees. load() copies.
 */
const frozenCopy = <T>(value: T): T => deepFreeze(structuredClone(value));

/** What the "job" key holds: the state, the effects it owes, and its log while small. */
type StoredRecord = JobState & {
  /** The items the commits queued and no write has dropped since (absent: an object from before). */
  owed?: StoredBatch[];
  /** Whether the table of failed outbox items exists. */
  outboxTable?: boolean;
  /** The log, while it rides on the record (absent: in its table). */
  log?: LogRow[];
};

/** Memos kept in memory only: losing one (a restart) costs at most one redundant ledger upsert. */
const MEMORY_ONLY_MEMOS: ReadonlySet<MemoKey> = new Set(["ledger_written"]);

export class JobStore implements JobContext {
  readonly config: Config;
  private readonly bindings: () => Env;
  private readonly storage: DurableObjectStorage;
  private readonly onCommit: () => void;
  // Created on first use: a job whose storage was deleted after retention is not given empty
  // tables again by a later read (a status lookup, a stray agent message).
  private logBuffer: LogBuffer | null = null;
  private outboxTable: Outbox | null = null;
  /** The current state (undefined: not read yet; null: there is none). */
  private cached: JobState | null | undefined;
  /** The state as the record holds it (differs from `cached` while a change is staged). */
  private written: JobState | null = null;
  /** What the record held besides the state when this instance read it. */
  private readBack: Omit<StoredRecord, keyof JobState> = {};
  private readonly memos = new Map<MemoKey, unknown>();
  /** The ledger content of this instance's last commit (a ledger item was queued for it). */
  private committedLedger: string | undefined;
  /** Operation counts since the state was read; saved inside the state at each commit. */
  private readonly ops = new Map<string, number>();
  /** Inside together(): the effects committed so far, written with the state when it ends. */
  private pending: { effects: OutboxItem[]; dirty: boolean } | null = null;
  /** Whether a state was stored when this instance first read it (undefined: not read yet). */
  private storedAtStart: boolean | undefined;
  /** The cached state holds a staged change no write has stored yet. */
  private staged = false;

  /** `bindings` reads the object's env at each use (tests swap a binding for a failing one). */
  constructor(storage: DurableObjectStorage, bindings: () => Env, config: Config, onCommit: () => void) {
    this.storage = storage;
    this.bindings = bindings;
    this.config = config;
    this.onCommit = onCommit;
  }

  get env(): Env {
    return this.bindings();
  }

  get logs(): LogBuffer {
    if (!this.logBuffer) {
      this.stored(); // what the record holds besides the state (readBack)
      // A record from before logs rode on it says nothing: the buffer looks for a table.
      const rows = this.readBack.log ?? (this.bornHere || this.readBack.owed ? [] : null);
      const inTable = this.readBack.owed !== undefined && this.readBack.log === undefined;
      this.logBuffer = new LogBuffer(this.storage.sql, redactorFor(this.env), {
        rows: inTable ? null : rows,
        persist: () => this.persist(),
      });
    }
    return this.logBuffer;
  }

  get outbox(): Outbox {
    if (!this.outboxTable) {
      this.stored();
      const fresh = this.bornHere || this.readBack.owed !== undefined;
      this.outboxTable = new Outbox(this.storage.sql, {
        batches: this.readBack.owed ?? [],
        table: fresh ? this.readBack.outboxTable === true : null,
        persist: () => this.persist(),
      });
    }
    return this.outboxTable;
  }

  /**
   * This instance found no state stored (a new job, or one deleted after retention): the object
   * then holds no tables but those this instance creates, so none is looked up in sqlite_master.
   */
  private get bornHere(): boolean {
    this.stored();
    return this.storedAtStart === false;
  }

  /** Writes the record: `state` with the effects still owed and the log while it is small. */
  private putRecord(state: JobState): void {
    const outbox = this.outbox;
    const record: StoredRecord = { ...state, owed: outbox.stored() };
    if (outbox.hasTable()) record.outboxTable = true;
    const log = this.logs.rowsForRecord();
    if (log) record.log = log;
    this.storage.kv.put("job", record);
    this.written = state;
  }

  /**
   * Rewrites the record as it stands (the outbox dropped done items, the log moved to its table),
   * a staged change included: the hand-over's mark and its done "enqueue" item are stored together.
   * (Inside together() the cached state's effects are not queued yet: the stored state is kept.)
   */
  private persist(): void {
    const withStaged = this.staged && !this.pending;
    const state = withStaged ? this.cached : this.written;
    if (!state) return;
    this.putRecord(state);
    if (withStaged) this.staged = false;
  }

  now(): number {
    return Date.now();
  }

  load(): JobState | undefined {
    const state = this.stored();
    return state ? structuredClone(state) : undefined;
  }

  peek(): Readonly<JobState> | undefined {
    return this.stored() ?? undefined;
  }

  commit(state: JobState, effects: OutboxItem[] = []): void {
    state.updatedAt = this.now();
    state.opCounts = this.countsWith(state.opCounts);
    // An API job has nobody to notify: its notifications would only cost outbox rows.
    const owed = state.chatId ? effects : effects.filter((e) => e.kind !== "notify");
    // A change the ledger row does not show (a dispatch mark, a step's progress) owes it no
    // write: the commit that last changed what it shows has already queued one. (Compared with
    // this instance's last commit: saveLiveness writes no ledger row, and a new instance does
    // not know what was queued before it, so its first commit queues one.)
    const content = ledgerContent(state);
    const items: OutboxItem[] = content !== this.committedLedger ? [{ kind: "ledger" }, ...owed] : owed;
    const frozen = frozenCopy(state);
    this.cached = frozen;
    if (this.pending) {
      this.pending.effects.push(...items);
      this.pending.dirty = true;
    } else this.write(frozen, items);
    this.committedLedger = content;
    this.ops.clear();
    if (!this.pending) this.onCommit();
  }

  /**
   * Runs `fn` with its commits (and liveness saves) applied in memory, then stored as one: one
   * state write and one outbox row (its ledger snapshots and notifications coalesced) instead of
   * one per commit. For work with no I/O between its commits (an agent's batch of frames): the
   * object then takes no other request meanwhile, so nothing else is answered before it is stored.
   */
  async together<T>(fn: () => Promise<T>): Promise<T> {
    if (this.pending) return fn();
    this.pending = { effects: [], dirty: false };
    try {
      return await fn();
    } finally {
      const { effects, dirty } = this.pending;
      this.pending = null;
      const state = this.cached;
      if (dirty && state) {
        this.write(state, effects);
        this.onCommit();
      }
    }
  }

  stage(state: JobState): void {
    this.cached = frozenCopy(state);
    this.staged = true;
  }

  /** Stores `state` (frozen: the record keeps it as the stored copy) with `items` in one write. */
  private write(state: JobState, items: OutboxItem[]): void {
    this.staged = false;
    this.storage.transactionSync(() => {
      this.outbox.queue(items);
      this.putRecord(state);
    });
  }

  /** Writes the record if the log changed since it was written and no commit has stored it (an agent's log-only frames). */
  flush(): void {
    if (this.logBuffer?.unsaved) this.persist();
  }

  saveLiveness(patch: LivenessPatch): void {
    const stored = this.load();
    if (!stored) return;
    // Field by field: a whole JobState passed here (it type-checks as a patch) saves only these.
    for (const key of LIVENESS_FIELDS) {
      if (patch[key] !== undefined) Object.assign(stored, { [key]: structuredClone(patch[key]) });
    }
    const frozen = deepFreeze(stored);
    this.cached = frozen;
    if (this.pending) this.pending.dirty = true;
    else {
      this.putRecord(frozen);
      this.staged = false;
    }
  }

  move(state: JobState, event: JobEvent, detail: Record<string, unknown> | null = null, at?: number): OutboxItem[] {
    return move(state, event, detail, at ?? this.now());
  }

  count(kind: string): void {
    this.ops.set(kind, (this.ops.get(kind) ?? 0) + 1);
  }

  memo<T>(key: MemoKey): T | undefined {
    if (!this.memos.has(key) && !MEMORY_ONLY_MEMOS.has(key)) this.memos.set(key, this.storage.kv.get(key));
    return this.memos.get(key) as T | undefined;
  }

  setMemo(key: MemoKey, value: unknown): void {
    if (!MEMORY_ONLY_MEMOS.has(key)) this.storage.kv.put(key, value);
    this.memos.set(key, value);
  }

  /** The operation counts (GET /api/jobs/:id/ops), uncommitted ones included. */
  opCounts(): Record<string, number> {
    const counts = this.countsWith(this.stored()?.opCounts);
    // Objects from before the counts moved into the state kept them in a table of their own.
    const legacy = this.storage.sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'op_counts'")
      .one().n;
    if (legacy > 0) {
      for (const r of this.storage.sql.exec<{ kind: string; n: number }>("SELECT kind, n FROM op_counts")) {
        counts[r.kind] = (counts[r.kind] ?? 0) + r.n;
      }
    }
    return counts;
  }

  /** Stores `state` as is: no commit, no effects (tests set up a state with it). */
  overwrite(state: JobState): void {
    this.stored();
    this.cached = frozenCopy(state);
    this.putRecord(this.cached);
    this.committedLedger = undefined;
    this.staged = false;
  }

  /** Deletes the job's storage (after retention); later reads find no job. */
  async deleteAll(inAlarm = false): Promise<void> {
    // In the alarm handler no alarm is set (it fired): deleting it would be one more write.
    if (!inAlarm) await this.storage.deleteAlarm();
    await this.storage.deleteAll();
    this.cached = null;
    this.written = null;
    this.readBack = {};
    this.staged = false;
    this.committedLedger = undefined;
    this.memos.clear();
    this.logBuffer = null;
    this.outboxTable = null;
  }

  private stored(): JobState | null {
    if (this.cached === undefined) {
      const read = this.storage.kv.get<StoredRecord>("job");
      if (read) {
        const { owed, outboxTable, log, ...state } = read;
        this.readBack = { owed, outboxTable, log };
        this.cached = deepFreeze(state);
        this.written = this.cached;
      } else this.cached = null;
      this.storedAtStart = this.cached !== null;
    }
    return this.cached;
  }

  private countsWith(saved: Record<string, number> | undefined): Record<string, number> {
    const counts = { ...saved };
    for (const [kind, n] of this.ops) counts[kind] = (counts[kind] ?? 0) + n;
    return counts;
  }
}
