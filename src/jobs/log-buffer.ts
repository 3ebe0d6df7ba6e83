// The live log of a job, kept in the JobDO's SQLite: chunks keyed by (attempt, seq) so an agent's
// resent chunks are appended once; tail and search are served from here while the job runs. The
// deployment's secrets are redacted before a chunk is stored, also when split across chunks.
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

export class LogBuffer {
  private readonly sql: SqlStorage;
  private readonly redactor: Redactor | null;

  constructor(sql: SqlStorage, redactor?: Redactor) {
    this.sql = sql;
    this.redactor = redactor && !redactor.empty ? redactor : null;
    sql.exec(`CREATE TABLE IF NOT EXISTS log_chunks (
      attempt INTEGER NOT NULL, seq INTEGER NOT NULL, step_id TEXT, stream TEXT NOT NULL,
      data TEXT NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY (attempt, seq))`);
  }

  /** Output is redacted again: chunks stored before redaction existed, or a gap in sequence. */
  private out(text: string): string {
    return this.redactor ? this.redactor.redact(text) : text;
  }

  /** Bytes stored so far (summed once, then kept up to date: appends are the only writes). */
  private total: number | null = null;

  totalBytes(): number {
    if (this.total === null) {
      const row = this.sql.exec<{ total: number | null }>("SELECT SUM(bytes) AS total FROM log_chunks").one();
      this.total = row.total ?? 0;
    }
    return this.total;
  }

  /** Appends a chunk once; returns false for a duplicate. Past the cap a single marker is kept. */
  append(chunk: LogChunkInput): boolean {
    const exists = this.sql
      .exec("SELECT 1 FROM log_chunks WHERE attempt = ? AND seq = ?", chunk.attempt, chunk.seq)
      .toArray();
    if (exists.length > 0) return false;
    chunk = { ...chunk, data: this.redactAcross(chunk) };
    const bytes = new TextEncoder().encode(chunk.data).length;
    const total = this.totalBytes();
    if (total + bytes > MAX_LOG_BYTES_PER_JOB) {
      const marked = this.sql.exec("SELECT 1 FROM log_chunks WHERE data = ? LIMIT 1", TRUNCATION_MARKER).toArray();
      if (marked.length === 0) {
        this.sql.exec(
          "INSERT INTO log_chunks (attempt, seq, step_id, stream, data, bytes) VALUES (?, ?, ?, 'system', ?, 0)",
          chunk.attempt,
          chunk.seq,
          chunk.stepId,
          TRUNCATION_MARKER,
        );
      }
      return true;
    }
    this.sql.exec(
      "INSERT INTO log_chunks (attempt, seq, step_id, stream, data, bytes) VALUES (?, ?, ?, ?, ?, ?)",
      chunk.attempt,
      chunk.seq,
      chunk.stepId,
      chunk.stream,
      chunk.data,
      bytes,
    );
    this.total = total + bytes;
    return true;
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
    const need = r.longest - 1;
    const before: { seq: number; data: string }[] = [];
    let headLength = 0;
    const rows = this.sql.exec<{ seq: number; data: string }>(
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
      this.sql.exec(
        "UPDATE log_chunks SET data = ?, bytes = ? WHERE attempt = ? AND seq = ?",
        keep,
        bytes,
        chunk.attempt,
        b.seq,
      );
      if (this.total !== null) this.total += bytes - old;
    }
    return data.slice(crossing.end - head.length);
  }

  lastSeq(attempt: number): number {
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
    const cursor = this.sql.exec<{ data: string }>("SELECT data FROM log_chunks ORDER BY attempt DESC, seq DESC");
    for (const row of cursor) {
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
    for (const row of this.sql.exec<{ data: string }>("SELECT data FROM log_chunks ORDER BY attempt, seq")) {
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
    const rows = this.sql.exec<{ attempt: number; seq: number; data: string }>(
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
    for (const row of this.sql.exec<{ data: string }>("SELECT data FROM log_chunks ORDER BY attempt, seq")) {
      yield this.out(row.data);
    }
  }

  /** What each step of `attempt` printed (for the job's answer), at most MAX_READ_PER_STEP each. */
  stepOutputs(attempt: number): Map<string, string> {
    const out = new Map<string, string>();
    const rows = this.sql.exec<{ step_id: string | null; data: string }>(
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
