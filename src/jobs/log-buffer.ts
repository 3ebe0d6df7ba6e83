// The live log of a job, kept in the JobDO's storage: chunks keyed by (attempt, seq) so an agent's
// resent chunks are appended once; tail and search are served from here while the job runs. The
// deployment's secrets are redacted before a chunk is stored, also when split across chunks.
//
// A small log (up to INLINE_MAX_BYTES, most jobs' whole output) rides on the state record
// (job-store.ts writes it with the state, so it costs no write of its own); one that outgrows it
// moves, whole and in the same transaction as the record's rewrite, into the `log_chunks` table,
// created then. There each row is a billed write: the consecutive chunks of one agent batch are
// stored as one row (keyed by its last seq, first_seq its first). While the log is small and
// this object has seen all of it, a copy is kept in memory, so the archive, tails and views read
// no rows (after a restart they read the table).
import { marker, type Redactor } from "../lib/redact.ts";
import { MAX_LOG_BYTES_PER_JOB, TRUNCATION_MARKER } from "./limits.ts";

export interface LogChunkInput {
  attempt: number;
  seq: number;
  stepId: string | null;
  stream: "stdout" | "stderr" | "system";
  data: string;
}

export interface LogPosition {
  attempt: number;
  seq: number;
}

/** Output read per step at most by stepOutputs (the log itself is capped per job). */
const MAX_READ_PER_STEP = 512 * 1024;
/**
 * The most text one row joins: a short job's whole output still fits one row, while a long
 * stream's rows stay small enough that redacting a row and reading its predecessor (for a secret
 * split across rows) stay cheap — rows of a whole ~1 MiB batch made 50 MB stream at 36 MB/s
 * against 54 MB/s chunk by chunk (npm run bench, same run).
 */
const MAX_RUN_CHARS = 128 * 1024;
/** The most of a log kept in memory beside its table (a short job's log is far less). */
const MEMORY_MAX_CHARS = 1024 * 1024;

/** How much log text a job keeps on its state record before the log moves to its table. */
export const INLINE_MAX_BYTES = 16 * 1024;

interface StoredChunk {
  attempt: number;
  seq: number;
  data: string;
}

/** A row of the log as the state record holds it (the table's columns). */
export interface LogRow extends StoredChunk {
  firstSeq: number | null;
  stepId: string | null;
  stream: LogChunkInput["stream"];
  bytes: number;
}

/** What the log needs of the record it rides on while small (job-store.ts). */
export interface LogHost {
  /** The rows the record holds; null when the log is in its table (or may be: an older object). */
  rows: readonly LogRow[] | null;
  /** Writes the record now (inline() included), in the caller's transaction. */
  persist(): void;
}

const before = (a: StoredChunk, b: { attempt: number; seq: number }) =>
  a.attempt < b.attempt || (a.attempt === b.attempt && a.seq < b.seq);

export class LogBuffer {
  private readonly sql: SqlStorage;
  private readonly redactor: Redactor | null;

  /** Whether the table exists (created when the log outgrows the record). */
  private created: boolean;
  /** The log while it rides on the record (null: it is in the table); the record holds what it was at its last write. */
  private inline: LogRow[] | null;
  private inlineBytes = 0;
  /** Rows were kept on the record since it was last written. */
  private dirty = false;
  private readonly host: LogHost | null;
  /** Every stored row in order, while this object has seen all of them and they are small; else null. */
  private memory: StoredChunk[] | null;
  private memoryChars = 0;

  /**
   * Without a host (a bare buffer) the log goes straight to its table. With one whose record
   * holds rows, they are the log and there is no table to look for.
   */
  constructor(sql: SqlStorage, redactor?: Redactor, host?: LogHost) {
    this.sql = sql;
    this.redactor = redactor && !redactor.empty ? redactor : null;
    this.host = host ?? null;
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

  private create(): void {
    if (this.created) return;
    // WITHOUT ROWID: a row is one b-tree entry (no rowid table beside the key's index), so each
    // insert writes one row, and creating it writes no index of its own.
    this.sql.exec(`CREATE TABLE IF NOT EXISTS log_chunks (
      attempt INTEGER NOT NULL, seq INTEGER NOT NULL, step_id TEXT, stream TEXT NOT NULL,
      data TEXT NOT NULL, bytes INTEGER NOT NULL, first_seq INTEGER, PRIMARY KEY (attempt, seq)) WITHOUT ROWID`);
    this.created = true;
  }

  /** The rows in order: from memory when it holds them all, else from the table. */
  private *rows(descending = false): Generator<StoredChunk> {
    if (this.inline) {
      const list = descending ? this.inline.slice().reverse() : this.inline.slice();
      yield* list;
      return;
    }
    if (this.memory) {
      const m = this.memory;
      // A copy of the list: a reader that awaits between rows (the archive) sees a fixed log.
      const list = descending ? m.slice().reverse() : m.slice();
      yield* list;
      return;
    }
    if (!this.created) return;
    const order = descending ? "DESC" : "";
    yield* this.sql.exec<{ attempt: number; seq: number; data: string }>(
      `SELECT attempt, seq, data FROM log_chunks ORDER BY attempt ${order}, seq ${order}`,
    );
  }

  /** Keeps the memory copy in step with a row written (inserted or rewritten). */
  private remember(row: StoredChunk): void {
    const m = this.memory;
    if (!m) return;
    let i = m.length;
    while (i > 0 && before(row, m[i - 1] as StoredChunk)) i--;
    const same = m[i - 1];
    if (same && same.attempt === row.attempt && same.seq === row.seq) {
      this.memoryChars += row.data.length - same.data.length;
      same.data = row.data;
    } else {
      m.splice(i, 0, { ...row });
      this.memoryChars += row.data.length;
    }
    if (this.memoryChars > MEMORY_MAX_CHARS) {
      this.memory = null;
      this.memoryChars = 0;
    }
  }

  /** Whether the record's copy of the log is behind (rows kept since its last write). */
  get unsaved(): boolean {
    return this.dirty;
  }

  /** The rows for the state record being written (undefined: the log is in its table). */
  rowsForRecord(): LogRow[] | undefined {
    this.dirty = false;
    return this.inline ? this.inline.map((r) => ({ ...r })) : undefined;
  }

  /** Keeps a row on the record (in order), or moves the whole log to the table when it outgrows it. */
  private keepInline(inline: LogRow[], row: LogRow): void {
    if (this.inlineBytes + row.bytes > INLINE_MAX_BYTES) {
      this.toTable(inline);
      this.insert(row, row.firstSeq, row.bytes);
      return;
    }
    let i = inline.length;
    while (i > 0 && before(row, inline[i - 1] as StoredChunk)) i--;
    inline.splice(i, 0, row);
    this.inlineBytes += row.bytes;
    this.dirty = true;
  }

  /**
   * The log outgrew the record: its rows go to the table and the record is rewritten without
   * them, in one transaction (no await between), so a restart finds each row in one place.
   */
  private toTable(inline: LogRow[]): void {
    this.inline = null;
    this.inlineBytes = 0;
    this.create();
    this.memory = [];
    this.memoryChars = 0;
    for (const r of inline) this.insert(r, r.firstSeq, r.bytes);
    this.host?.persist();
  }

  private insert(c: LogChunkInput, firstSeq: number | null, bytes: number): void {
    const inline = this.inline;
    if (inline) {
      this.keepInline(inline, { ...c, firstSeq, bytes });
      return;
    }
    this.create();
    this.sql.exec(
      "INSERT INTO log_chunks (attempt, seq, step_id, stream, data, bytes, first_seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
      c.attempt,
      c.seq,
      c.stepId,
      c.stream,
      c.data,
      bytes,
      firstSeq,
    );
    this.remember(c);
  }

  /** The seqs in [from, to] of `attempt` already stored (a row covers first_seq … seq). */
  private storedSeqs(attempt: number, from: number, to: number): (seq: number) => boolean {
    if (this.inline) {
      const spans = this.inline
        .filter((r) => r.attempt === attempt && r.seq >= from && (r.firstSeq ?? r.seq) <= to)
        .map((r) => ({ f: r.firstSeq ?? r.seq, l: r.seq }));
      return (seq) => spans.some((r) => r.f <= seq && seq <= r.l);
    }
    if (!this.created) return () => false;
    const spans = this.sql
      .exec<{ f: number; l: number }>(
        "SELECT COALESCE(first_seq, seq) AS f, seq AS l FROM log_chunks WHERE attempt = ? AND seq >= ? AND COALESCE(first_seq, seq) <= ?",
        attempt,
        from,
        to,
      )
      .toArray();
    return (seq) => spans.some((r) => r.f <= seq && seq <= r.l);
  }

  /** Output is redacted again: chunks stored before redaction existed, or a gap in sequence. */
  private out(text: string): string {
    return this.redactor ? this.redactor.redact(text) : text;
  }

  /** Bytes stored so far (summed once, then kept up to date: appends are the only writes). */
  private total: number | null = null;

  totalBytes(): number {
    if (this.total === null) {
      const row = this.inline
        ? { total: this.inlineBytes }
        : this.created
          ? this.sql.exec<{ total: number | null }>("SELECT SUM(bytes) AS total FROM log_chunks").one()
          : { total: 0 };
      this.total = row.total ?? 0;
    }
    return this.total;
  }

  /** Appends a chunk once; returns false for a duplicate. Past the cap a single marker is kept. */
  append(chunk: LogChunkInput): boolean {
    if (this.storedSeqs(chunk.attempt, chunk.seq, chunk.seq)(chunk.seq)) return false;
    this.store(chunk);
    return true;
  }

  /** Stores a chunk known to be new. */
  private store(chunk: LogChunkInput): void {
    chunk = { ...chunk, data: this.redactAcross(chunk) };
    const bytes = new TextEncoder().encode(chunk.data).length;
    const total = this.totalBytes();
    if (total + bytes > MAX_LOG_BYTES_PER_JOB) {
      const marked = this.inline
        ? this.inline.some((r) => r.data === TRUNCATION_MARKER)
        : this.created &&
          this.sql.exec("SELECT 1 FROM log_chunks WHERE data = ? LIMIT 1", TRUNCATION_MARKER).toArray().length > 0;
      if (!marked) this.insert({ ...chunk, stream: "system", data: TRUNCATION_MARKER }, null, 0);
      return;
    }
    this.insert(chunk, null, bytes);
    this.total = total + bytes;
  }

  /**
   * Appends the chunks of one batch, each once: a run of consecutive seqs of one step and stream
   * is stored as one row (its text joined, redacted as one). Near the cap, chunk by chunk.
   */
  appendMany(chunks: readonly LogChunkInput[]): void {
    const first = chunks[0];
    if (!first) return;
    if (chunks.length === 1 || chunks.some((c) => c.attempt !== first.attempt)) {
      for (const c of chunks) this.append(c);
      return;
    }
    const seqs = chunks.map((c) => c.seq);
    const stored = this.storedSeqs(first.attempt, Math.min(...seqs), Math.max(...seqs));
    const seen = new Set<number>();
    const fresh = chunks.filter((c) => !stored(c.seq) && !seen.has(c.seq) && seen.add(c.seq));
    let run: LogChunkInput[] = [];
    let runChars = 0;
    const flush = () => {
      if (run.length > 0) this.storeRun(run);
      run = [];
    };
    for (const c of fresh) {
      const last = run[run.length - 1];
      if (last && (c.seq !== last.seq + 1 || c.stepId !== last.stepId || c.stream !== last.stream)) flush();
      else if (runChars + c.data.length > MAX_RUN_CHARS) flush();
      if (run.length === 0) runChars = 0;
      run.push(c);
      runChars += c.data.length;
    }
    flush();
  }

  private storeRun(run: LogChunkInput[]): void {
    const first = run[0] as LogChunkInput;
    const last = run[run.length - 1] as LogChunkInput;
    const data = run.map((c) => c.data).join("");
    // Redaction may lengthen the text (a marker for a short secret): kept well clear of the cap,
    // where the chunk-by-chunk path places the truncation marker exactly.
    if (run.length === 1 || this.totalBytes() + data.length * 4 + 65_536 > MAX_LOG_BYTES_PER_JOB) {
      for (const c of run) this.store(c);
      return;
    }
    const text = this.redactAcross({ ...first, data });
    const bytes = new TextEncoder().encode(text).length;
    this.insert({ ...last, data: text }, first.seq, bytes);
    this.total = this.totalBytes() + bytes;
  }

  /**
   * The chunk's data with secrets redacted. A secret that starts in the chunks just before this
   * one (same attempt) and ends here is cut from both: the earlier chunk ends with the marker,
   * this one loses the secret's remaining characters.
   */
  private redactAcross(chunk: LogChunkInput): string {
    const r = this.redactor;
    if (!r) return chunk.data;
    const data = r.redact(chunk.data);
    if (!this.created && !this.inline?.length) return data;
    const need = r.longest - 1;
    const before: { seq: number; data: string }[] = [];
    let headLength = 0;
    const rows = this.inline
      ? this.inline
          .filter((row) => row.attempt === chunk.attempt && row.seq < chunk.seq)
          .reverse()
          .slice(0, 64)
      : this.sql.exec<{ seq: number; data: string }>(
          "SELECT seq, data FROM log_chunks WHERE attempt = ? AND seq < ? ORDER BY seq DESC LIMIT 64",
          chunk.attempt,
          chunk.seq,
        );
    for (const row of rows) {
      if (headLength >= need) break;
      before.unshift(row);
      headLength += row.data.length;
    }
    if (before.length === 0) return data;
    const head = before.map((b) => b.data).join("");
    const crossing = r.spans(head + data).find((s) => s.start < head.length && s.end > head.length);
    if (!crossing) return data;
    // Rewrite the earlier chunks the secret touches: the first keeps its text up to the secret
    // plus the marker, any wholly inside it become empty.
    let offset = 0;
    let markerPlaced = false;
    for (const b of before) {
      const from = offset;
      offset += b.data.length;
      if (offset <= crossing.start) continue;
      const keep = markerPlaced ? "" : b.data.slice(0, Math.max(0, crossing.start - from)) + marker(crossing.name);
      markerPlaced = true;
      const bytes = new TextEncoder().encode(keep).length;
      const old = new TextEncoder().encode(b.data).length;
      const kept = this.inline?.find((row) => row.attempt === chunk.attempt && row.seq === b.seq);
      if (kept) {
        kept.data = keep;
        kept.bytes = bytes;
        this.inlineBytes += bytes - old;
        this.dirty = true;
      } else
        this.sql.exec(
          "UPDATE log_chunks SET data = ?, bytes = ? WHERE attempt = ? AND seq = ?",
          keep,
          bytes,
          chunk.attempt,
          b.seq,
        );
      if (this.total !== null) this.total += bytes - old;
      this.remember({ attempt: chunk.attempt, seq: b.seq, data: keep });
    }
    return data.slice(crossing.end - head.length);
  }

  lastSeq(attempt: number): number {
    if (this.inline) return Math.max(-1, ...this.inline.filter((r) => r.attempt === attempt).map((r) => r.seq));
    if (!this.created) return -1;
    const row = this.sql
      .exec<{ s: number | null }>("SELECT MAX(seq) AS s FROM log_chunks WHERE attempt = ?", attempt)
      .one();
    return row.s ?? -1;
  }

  /** The last `lines` lines of the whole log (all attempts, in order). */
  tail(lines: number, maxBytes = 256 * 1024): string {
    const parts: string[] = [];
    let bytes = 0;
    let newlines = 0;
    for (const row of this.rows(true)) {
      parts.push(row.data);
      bytes += row.data.length;
      newlines += row.data.split("\n").length - 1;
      if (newlines > lines || bytes > maxBytes) break;
    }
    const text = parts.reverse().join("");
    const all = text.endsWith("\n") ? text.slice(0, -1).split("\n") : text.split("\n");
    return this.out(all.slice(-lines).join("\n"));
  }

  /** Lines containing `needle` (plain substring, case-insensitive), at most `limit`. */
  search(needle: string, limit = 500): string[] {
    const out: string[] = [];
    const lower = needle.toLowerCase();
    let carry = "";
    for (const row of this.rows()) {
      const lines = (carry + row.data).split("\n");
      carry = lines.pop() ?? "";
      for (const line of lines) {
        if (line.toLowerCase().includes(lower) && out.length < limit) out.push(this.out(line));
      }
      if (out.length >= limit) return out;
    }
    if (carry?.toLowerCase().includes(lower) && out.length < limit) out.push(this.out(carry));
    return out;
  }

  /** Chunks after a position, in order, up to about `maxBytes` (for the live stream). */
  after(pos: LogPosition | null, maxBytes = 256 * 1024): { chunks: string[]; next: LogPosition | null } {
    if (!this.created && !this.inline) return { chunks: [], next: pos };
    const rows = this.inline
      ? this.inline.filter((r) => !pos || r.attempt > pos.attempt || (r.attempt === pos.attempt && r.seq > pos.seq))
      : this.sql.exec<{ attempt: number; seq: number; data: string }>(
          "SELECT attempt, seq, data FROM log_chunks WHERE attempt > ? OR (attempt = ? AND seq > ?) ORDER BY attempt, seq",
          pos?.attempt ?? -1,
          pos?.attempt ?? -1,
          pos?.seq ?? -1,
        );
    const chunks: string[] = [];
    let next = pos;
    let bytes = 0;
    for (const row of rows) {
      chunks.push(this.out(row.data));
      next = { attempt: row.attempt, seq: row.seq };
      bytes += row.data.length;
      if (bytes >= maxBytes) break;
    }
    return { chunks, next };
  }

  /** Streams the whole log, chunk by chunk, in order (for the R2 archive). */
  *chunks(): Generator<string> {
    for (const row of this.rows()) yield this.out(row.data);
  }

  /** What each step of `attempt` printed (for the job's answer), at most MAX_READ_PER_STEP each. */
  stepOutputs(attempt: number): Map<string, string> {
    const out = new Map<string, string>();
    if (!this.created && !this.inline) return out;
    const rows = this.inline
      ? this.inline.filter((r) => r.attempt === attempt).map((r) => ({ step_id: r.stepId, data: r.data }))
      : this.sql.exec<{ step_id: string | null; data: string }>(
          "SELECT step_id, data FROM log_chunks WHERE attempt = ? AND step_id IS NOT NULL ORDER BY seq",
          attempt,
        );
    for (const row of rows) {
      if (!row.step_id) continue;
      const had = out.get(row.step_id) ?? "";
      if (had.length >= MAX_READ_PER_STEP) continue;
      out.set(row.step_id, (had + row.data).slice(0, MAX_READ_PER_STEP));
    }
    return out;
  }
}
