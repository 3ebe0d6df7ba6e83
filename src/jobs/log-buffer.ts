// The live log of a job: chunks keyed by (attempt, seq) so an agent's resent chunks are appended
// once; tail and search are served from here while the job runs. The deployment's secrets are
// redacted before a chunk is stored, also when split across chunks. The consecutive chunks of
// one agent batch are stored as one row (keyed by its last seq, first_seq its first). Where the
// rows live — on the state record while the log is small, else in a table — is log-store.ts's.
import { marker, type Redactor } from "../lib/redact.ts";
import { MAX_LOG_BYTES_PER_JOB, TRUNCATION_MARKER } from "./limits.ts";
import { type LogHost, type LogPosition, type LogRow, LogStore } from "./log-store.ts";

export { INLINE_MAX_BYTES, type LogHost, type LogPosition, type LogRow } from "./log-store.ts";

export interface LogChunkInput {
  attempt: number;
  seq: number;
  stepId: string | null;
  stream: "stdout" | "stderr" | "system";
  data: string;
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

/** Rows read back at most to find a secret's start split from this chunk. */
const BEFORE_ROWS = 64;

const encoder = new TextEncoder();
/** Scratch space for counting UTF-8 bytes without a copy of each row (a row is ≤ 3 bytes a char). */
let scratch = new Uint8Array(0);
const SCRATCH_MAX = 3 * 512 * 1024;

function byteLength(text: string): number {
  const need = text.length * 3;
  if (need > SCRATCH_MAX) return encoder.encode(text).length;
  if (scratch.length < need) scratch = new Uint8Array(Math.max(need, 3 * MAX_RUN_CHARS));
  return encoder.encodeInto(text, scratch).written;
}

/**
 * The last characters of an attempt's stored log, whose last row is `seq` (as many as a secret
 * split across rows could start in): a streaming log's next row is checked against this rather
 * than against its predecessors read back from storage.
 */
interface Tail {
  attempt: number;
  seq: number;
  text: string;
}

export class LogBuffer {
  private readonly store: LogStore;
  private readonly redactor: Redactor | null;
  /** Bytes stored so far (summed once, then kept up to date: this object is the only writer). */
  private total: number | null = null;
  /** Highest seq stored per attempt (read once, then kept up to date, as `total`). */
  private readonly maxSeq = new Map<number, number>();
  /** The tail of the rows last written (null: unknown, read from storage when needed). */
  private tailSeen: Tail | null = null;

  /** Without a host the log goes straight to its table (see LogStore). */
  constructor(sql: SqlStorage, redactor?: Redactor, host?: LogHost) {
    this.store = new LogStore(sql, host ?? null);
    this.redactor = redactor && !redactor.empty ? redactor : null;
  }

  /** Whether the record's copy of the log is behind (rows kept since its last write). */
  get unsaved(): boolean {
    return this.store.unsaved;
  }

  /** The rows for the state record being written (undefined: the log is in its table). */
  rowsForRecord(): LogRow[] | undefined {
    return this.store.forRecord();
  }

  /** Output is redacted again: chunks stored before redaction existed, or a gap in sequence. */
  private out(text: string): string {
    return this.redactor ? this.redactor.redact(text) : text;
  }

  totalBytes(): number {
    this.total ??= this.store.totalBytes();
    return this.total;
  }

  /** The seqs in [from, to] of `attempt` already stored (a row covers first_seq … seq). */
  private storedSeqs(attempt: number, from: number, to: number): (seq: number) => boolean {
    // A streaming log's next chunks come after everything stored: nothing to look up.
    if (from > this.lastSeq(attempt)) return () => false;
    const spans = this.store.spans(attempt, from, to);
    return (seq) => spans.some((r) => r.f <= seq && seq <= r.l);
  }

  private insert(c: LogChunkInput, firstSeq: number | null, bytes: number): void {
    const total = this.totalBytes();
    const last = this.lastSeq(c.attempt);
    this.store.insert({ ...c, firstSeq, bytes });
    this.total = total + bytes;
    this.maxSeq.set(c.attempt, Math.max(last, c.seq));
    // The tail stays known only while rows are added after it, in order.
    const t = this.tailSeen;
    const keep = (this.redactor?.longest ?? 1) - 1;
    this.tailSeen =
      t && keep > 0 && t.attempt === c.attempt && t.seq === last && (firstSeq ?? c.seq) > last
        ? { attempt: c.attempt, seq: c.seq, text: (t.text + c.data.slice(-keep)).slice(-keep) }
        : null;
  }

  /** Appends a chunk once; returns false for a duplicate. Past the cap a single marker is kept. */
  append(chunk: LogChunkInput): boolean {
    if (this.storedSeqs(chunk.attempt, chunk.seq, chunk.seq)(chunk.seq)) return false;
    this.storeChunk(chunk);
    return true;
  }

  /** Stores a chunk known to be new. */
  private storeChunk(chunk: LogChunkInput): void {
    chunk = { ...chunk, data: this.redactAcross(chunk) };
    const bytes = byteLength(chunk.data);
    if (this.totalBytes() + bytes > MAX_LOG_BYTES_PER_JOB) {
      if (!this.store.holds(TRUNCATION_MARKER))
        this.insert({ ...chunk, stream: "system", data: TRUNCATION_MARKER }, null, 0);
      return;
    }
    this.insert(chunk, null, bytes);
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
      for (const c of run) this.storeChunk(c);
      return;
    }
    const text = this.redactAcross({ ...first, data });
    this.insert({ ...last, data: text }, first.seq, byteLength(text));
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
    // Past everything stored of its attempt (a streaming log's next row): what comes before it is
    // the tail kept from the rows written, when known.
    const last = this.lastSeq(chunk.attempt);
    const beyond = chunk.seq > last;
    if (!this.store.any) {
      if (beyond) this.tailSeen = { attempt: chunk.attempt, seq: last, text: "" };
      return data;
    }
    const need = r.longest - 1;
    const t = this.tailSeen;
    // Storage is read only when a secret may cross into this chunk.
    if (beyond && t?.attempt === chunk.attempt && t.seq === last) {
      if (!r.crosses(t.text + data.slice(0, need), t.text.length)) return data;
    }
    const before: { seq: number; data: string }[] = [];
    let headLength = 0;
    for (const row of this.store.before(chunk.attempt, chunk.seq, BEFORE_ROWS)) {
      if (headLength >= need) break;
      before.unshift(row);
      headLength += row.data.length;
    }
    const head = before.map((b) => b.data).join("");
    // Known from here on when these are all the attempt's rows and as much of them as a secret
    // can span (not when BEFORE_ROWS short rows held less); a rewrite below forgets it again.
    const whole = beyond && (headLength >= need || before.length < BEFORE_ROWS);
    this.tailSeen = whole ? { attempt: chunk.attempt, seq: last, text: head.slice(-need) } : null;
    if (before.length === 0) return data;
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
      const bytes = byteLength(keep);
      this.store.rewrite(chunk.attempt, b.seq, keep, bytes);
      this.tailSeen = null;
      if (this.total !== null) this.total += bytes - byteLength(b.data);
    }
    return data.slice(crossing.end - head.length);
  }

  lastSeq(attempt: number): number {
    let last = this.maxSeq.get(attempt);
    if (last === undefined) {
      last = this.store.lastSeq(attempt);
      this.maxSeq.set(attempt, last);
    }
    return last;
  }

  /** The last `lines` lines of the whole log (all attempts, in order). */
  tail(lines: number, maxBytes = 256 * 1024): string {
    const parts: string[] = [];
    let bytes = 0;
    let newlines = 0;
    for (const row of this.store.rows(true)) {
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
    for (const row of this.store.rows()) {
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
    const chunks: string[] = [];
    let next = pos;
    let bytes = 0;
    for (const row of this.store.after(pos)) {
      chunks.push(this.out(row.data));
      next = { attempt: row.attempt, seq: row.seq };
      bytes += row.data.length;
      if (bytes >= maxBytes) break;
    }
    return { chunks, next };
  }

  /** Streams the whole log, chunk by chunk, in order (for the R2 archive). */
  *chunks(): Generator<string> {
    for (const row of this.store.rows()) yield this.out(row.data);
  }

  /**
   * The whole log's UTF-8 size as stored, without reading it through: what chunks() yields
   * unless a row is redacted again as it is read (one stored before redaction existed).
   */
  storedUtf8Bytes(): number {
    return this.store.storedUtf8Bytes();
  }

  /** What each step of `attempt` printed (for the job's answer), at most MAX_READ_PER_STEP each. */
  stepOutputs(attempt: number): Map<string, string> {
    const out = new Map<string, string>();
    for (const row of this.store.ofSteps(attempt, MAX_READ_PER_STEP)) {
      const had = out.get(row.stepId) ?? "";
      if (had.length >= MAX_READ_PER_STEP) continue;
      out.set(row.stepId, (had + row.data).slice(0, MAX_READ_PER_STEP));
    }
    return out;
  }
}
