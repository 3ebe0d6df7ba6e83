// Where a job's log rows live: on the state record while the log is small (job-store.ts writes
// them with the state, so they cost no write of their own), in the `log_chunks` table once it
// outgrows INLINE_MAX_BYTES (created then; each row a billed write). The move is whole and in
// the same transaction as the record's rewrite, so a restart finds each row in one place. While
// the table's rows are few and this object has seen them all, a copy is kept in memory, so the
// archive, tails and views read no rows (after a restart they read the table).
// log-buffer.ts decides what is stored (deduplication, runs, redaction) and reads it.

const encoder = new TextEncoder();

/**
 * Text as the table keeps it. SQLite would store a lone surrogate as its WTF-8 bytes, which read
 * back as three U+FFFD: it is stored as the one U+FFFD a UTF-8 encoder writes for it (as the R2
 * archive and the ledger's copy hold it), so what is read back is what was counted.
 */
const wellFormed = (s: string): string => (s as unknown as { toWellFormed(): string }).toWellFormed();

/** How much log text a job keeps on its state record before the log moves to its table. */
export const INLINE_MAX_BYTES = 16 * 1024;
/** The most of a log kept in memory beside its table (a short job's log is far less). */
const MEMORY_MAX_CHARS = 1024 * 1024;

export interface LogPosition {
  attempt: number;
  seq: number;
}

export interface StoredChunk extends LogPosition {
  data: string;
}

/** A row of the log (the table's columns; the record holds the same). */
export interface LogRow extends StoredChunk {
  /** A row joining several frames is keyed by the last one's seq; firstSeq is the first's. */
  firstSeq: number | null;
  stepId: string | null;
  stream: "stdout" | "stderr" | "system";
  bytes: number;
}

/** What the log needs of the record it rides on while small (job-store.ts). */
export interface LogHost {
  /** The rows the record holds; null when the log is in its table (or may be: an older object). */
  rows: readonly LogRow[] | null;
  /** Writes the record now (forRecord() included), in the caller's transaction. */
  persist(): void;
}

const before = (a: LogPosition, b: LogPosition) => a.attempt < b.attempt || (a.attempt === b.attempt && a.seq < b.seq);

/** Puts `row` into the ordered `list` (replacing one of the same position); returns the change in size. */
function place<T extends StoredChunk>(list: T[], row: T): number {
  let i = list.length;
  while (i > 0 && before(row, list[i - 1] as T)) i--;
  const same = list[i - 1];
  if (same && same.attempt === row.attempt && same.seq === row.seq) {
    const grown = row.data.length - same.data.length;
    Object.assign(same, row);
    return grown;
  }
  list.splice(i, 0, { ...row });
  return row.data.length;
}

export class LogStore {
  private readonly sql: SqlStorage;
  private readonly host: LogHost | null;
  /** Whether the table exists. */
  private created: boolean;
  /** The log while it rides on the record (null: it is in the table). */
  private inline: LogRow[] | null;
  private inlineBytes = 0;
  /** Rows were kept on the record since it was last written. */
  private dirty = false;
  /** Every table row in order, while this object has seen all of them and they are small; else null. */
  private memory: StoredChunk[] | null;
  private memoryChars = 0;

  /**
   * Without a host (a bare buffer) the log goes straight to its table. With one whose record
   * holds rows, they are the log and there is no table to look for.
   */
  constructor(sql: SqlStorage, host: LogHost | null) {
    this.sql = sql;
    this.host = host;
    this.inline = host?.rows ? host.rows.map((r) => ({ ...r })) : null;
    for (const r of this.inline ?? []) this.inlineBytes += r.bytes;
    const existing = this.inline
      ? undefined
      : sql
          .exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'log_chunks'")
          .toArray()[0];
    this.created = !!existing;
    // An object from before logs rode on the record, with no table: its log starts on the record.
    if (!existing && host && !this.inline) this.inline = [];
    // A table this object did not just create may hold rows it has not seen (a restart).
    this.memory = existing || this.inline ? null : [];
    // Tables from before combined rows get the column that holds a row's first seq.
    if (existing && !existing.sql.includes("first_seq"))
      sql.exec("ALTER TABLE log_chunks ADD COLUMN first_seq INTEGER");
  }

  /** Whether anything may be stored (false: no row yet, and none to look for). */
  get any(): boolean {
    return this.created || (this.inline?.length ?? 0) > 0;
  }

  /** Whether the record's copy of the log is behind (rows kept since its last write). */
  get unsaved(): boolean {
    return this.dirty;
  }

  /** The rows for the state record being written (undefined: the log is in its table). */
  forRecord(): LogRow[] | undefined {
    this.dirty = false;
    return this.inline ? this.inline.map((r) => ({ ...r })) : undefined;
  }

  private create(): void {
    if (this.created) return;
    // WITHOUT ROWID: a row is one b-tree entry (no rowid table beside the key's index), so each
    // insert writes one row, and creating it writes no index of its own.
    this.sql.exec(`CREATE TABLE IF NOT EXISTS log_chunks (
      attempt INTEGER NOT NULL, seq INTEGER NOT NULL, step_id TEXT, stream TEXT NOT NULL,
      data TEXT NOT NULL, bytes INTEGER NOT NULL, first_seq INTEGER, PRIMARY KEY (attempt, seq)) WITHOUT ROWID`);
    this.created = true;
  }

  /** Keeps the memory copy in step with a table row written (inserted or rewritten). */
  private remember(row: StoredChunk): void {
    if (!this.memory) return;
    this.memoryChars += place(this.memory, { attempt: row.attempt, seq: row.seq, data: row.data });
    if (this.memoryChars > MEMORY_MAX_CHARS) {
      this.memory = null;
      this.memoryChars = 0;
    }
  }

  /** Stores a new row: on the record while the log stays small, else in the table (moving it there first). */
  insert(row: LogRow): void {
    const inline = this.inline;
    if (inline && this.inlineBytes + row.bytes <= INLINE_MAX_BYTES) {
      place(inline, row);
      this.inlineBytes += row.bytes;
      this.dirty = true;
      return;
    }
    if (inline) this.toTable(inline);
    this.create();
    this.sql.exec(
      "INSERT INTO log_chunks (attempt, seq, step_id, stream, data, bytes, first_seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
      row.attempt,
      row.seq,
      row.stepId,
      row.stream,
      wellFormed(row.data),
      row.bytes,
      row.firstSeq,
    );
    this.remember(row);
  }

  /**
   * The log outgrew the record: its rows go to the table and the record is rewritten without
   * them, in one transaction (no await between), so a restart finds each row in one place.
   */
  private toTable(inline: LogRow[]): void {
    this.inline = null;
    this.inlineBytes = 0;
    this.memory = [];
    this.memoryChars = 0;
    for (const r of inline) this.insert(r);
    this.host?.persist();
  }

  /** Replaces a stored row's text (a secret's start cut from it). */
  rewrite(attempt: number, seq: number, data: string, bytes: number): void {
    const kept = this.inline?.find((r) => r.attempt === attempt && r.seq === seq);
    if (kept) {
      this.inlineBytes += bytes - kept.bytes;
      kept.data = data;
      kept.bytes = bytes;
      this.dirty = true;
      return;
    }
    this.sql.exec(
      "UPDATE log_chunks SET data = ?, bytes = ? WHERE attempt = ? AND seq = ?",
      wellFormed(data),
      bytes,
      attempt,
      seq,
    );
    this.remember({ attempt, seq, data });
  }

  /** The spans of seqs ([first, last]) of `attempt`'s rows that overlap [from, to]. */
  spans(attempt: number, from: number, to: number): { f: number; l: number }[] {
    if (this.inline)
      return this.inline
        .filter((r) => r.attempt === attempt && r.seq >= from && (r.firstSeq ?? r.seq) <= to)
        .map((r) => ({ f: r.firstSeq ?? r.seq, l: r.seq }));
    if (!this.created) return [];
    return this.sql
      .exec<{ f: number; l: number }>(
        "SELECT COALESCE(first_seq, seq) AS f, seq AS l FROM log_chunks WHERE attempt = ? AND seq >= ? AND COALESCE(first_seq, seq) <= ?",
        attempt,
        from,
        to,
      )
      .toArray();
  }

  totalBytes(): number {
    if (this.inline) return this.inlineBytes;
    if (!this.created) return 0;
    return this.sql.exec<{ total: number | null }>("SELECT SUM(bytes) AS total FROM log_chunks").one().total ?? 0;
  }

  /**
   * The UTF-8 size of the rows' text as stored: for the table, SQLite's own count of each value's
   * bytes (no row is read into the isolate); a row kept in memory is encoded.
   */
  storedUtf8Bytes(): number {
    const list = this.inline ?? this.memory;
    if (list) return list.reduce((n, r) => n + encoder.encode(r.data).length, 0);
    if (!this.created) return 0;
    return (
      this.sql.exec<{ n: number | null }>("SELECT SUM(LENGTH(CAST(data AS BLOB))) AS n FROM log_chunks").one().n ?? 0
    );
  }

  /** Whether a row holds exactly `data` (the truncation marker). */
  holds(data: string): boolean {
    if (this.inline) return this.inline.some((r) => r.data === data);
    return this.created && this.sql.exec("SELECT 1 FROM log_chunks WHERE data = ? LIMIT 1", data).toArray().length > 0;
  }

  /** The rows of `attempt` before `seq`, latest first, at most `limit` (read lazily: callers stop early). */
  *before(attempt: number, seq: number, limit: number): Generator<{ seq: number; data: string }> {
    if (this.inline) {
      yield* this.inline
        .filter((r) => r.attempt === attempt && r.seq < seq)
        .reverse()
        .slice(0, limit);
      return;
    }
    if (!this.created) return;
    yield* this.sql.exec<{ seq: number; data: string }>(
      "SELECT seq, data FROM log_chunks WHERE attempt = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
      attempt,
      seq,
      limit,
    );
  }

  /** Every row in order: from the record, or memory when it holds them all, else the table. */
  *rows(descending = false): Generator<StoredChunk> {
    const list = this.inline ?? this.memory;
    if (list) {
      // A copy of the list: a reader that awaits between rows (the archive) sees a fixed log.
      yield* descending ? list.slice().reverse() : list.slice();
      return;
    }
    if (!this.created) return;
    const order = descending ? "DESC" : "";
    yield* this.sql.exec<{ attempt: number; seq: number; data: string }>(
      `SELECT attempt, seq, data FROM log_chunks ORDER BY attempt ${order}, seq ${order}`,
    );
  }

  /** The rows after `pos` (null: all), in order. */
  *after(pos: LogPosition | null): Generator<StoredChunk> {
    if (this.inline) {
      yield* this.inline.filter((r) => !pos || before(pos, r));
      return;
    }
    if (!this.created) return;
    yield* this.sql.exec<{ attempt: number; seq: number; data: string }>(
      "SELECT attempt, seq, data FROM log_chunks WHERE attempt > ? OR (attempt = ? AND seq > ?) ORDER BY attempt, seq",
      pos?.attempt ?? -1,
      pos?.attempt ?? -1,
      pos?.seq ?? -1,
    );
  }

  /**
   * The rows of `attempt` that belong to a step, in order: those of each step that can hold its
   * first `maxChars` characters (a reader of a step's start need not pull a 50 MB log out of the
   * table). A UTF-16 unit takes at most 3 UTF-8 bytes, so a row after 3 × maxChars bytes of its
   * step starts past maxChars characters: those rows stay in the table.
   */
  *ofSteps(attempt: number, maxChars: number): Generator<{ stepId: string; data: string }> {
    if (this.inline) {
      for (const r of this.inline) if (r.attempt === attempt && r.stepId) yield { stepId: r.stepId, data: r.data };
      return;
    }
    if (!this.created) return;
    for (const r of this.sql.exec<{ step_id: string; data: string }>(
      `SELECT step_id, data FROM log_chunks WHERE attempt = ? AND seq IN (
         SELECT seq FROM (
           SELECT seq, SUM(bytes) OVER (PARTITION BY step_id ORDER BY seq ROWS UNBOUNDED PRECEDING) - bytes AS before
           FROM log_chunks WHERE attempt = ? AND step_id IS NOT NULL)
         WHERE before < ?)
       ORDER BY seq`,
      attempt,
      attempt,
      3 * maxChars,
    ))
      yield { stepId: r.step_id, data: r.data };
  }

  lastSeq(attempt: number): number {
    if (this.inline) return Math.max(-1, ...this.inline.filter((r) => r.attempt === attempt).map((r) => r.seq));
    if (!this.created) return -1;
    return (
      this.sql.exec<{ s: number | null }>("SELECT MAX(seq) AS s FROM log_chunks WHERE attempt = ?", attempt).one().s ??
      -1
    );
  }
}
