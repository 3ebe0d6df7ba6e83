// Turns a step's output into sequence-numbered `log` frames: flushed every 250 ms or at 64 KiB,
// each frame's text at most MAX_LOG_CHUNK_BYTES of UTF-8, never splitting a character.
import { MAX_LOG_CHUNK_BYTES } from "../../protocol/index.ts";
import type { OutStream } from "./executor.ts";

export interface LogFrameInput {
  seq: number;
  stream: OutStream;
  stepId: string | undefined;
  data: string;
}

/** Largest prefix of buf (≤ max bytes) that ends on a UTF-8 character boundary. */
export function utf8Cut(buf: Buffer, max: number): number {
  if (buf.length <= max) return buf.length;
  let cut = max;
  // step back over continuation bytes (10xxxxxx) to the start of the split character
  while (cut > 0 && ((buf[cut] ?? 0) & 0xc0) === 0x80) cut -= 1;
  return cut === 0 ? max : cut;
}

export class LogChunker {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private stream: OutStream = "stdout";
  private stepId: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  seq: number;
  private readonly emit: (frame: LogFrameInput) => Promise<void>;
  private readonly intervalMs: number;

  constructor(emit: (frame: LogFrameInput) => Promise<void>, opts: { startSeq?: number; intervalMs?: number } = {}) {
    this.emit = emit;
    this.seq = opts.startSeq ?? 0;
    this.intervalMs = opts.intervalMs ?? 250;
  }

  setStep(stepId: string | undefined): void {
    this.stepId = stepId;
  }

  /** Adds output; resolves when the frames it completed have been handed on (backpressure). */
  async write(stream: OutStream, data: Buffer): Promise<void> {
    if (stream !== this.stream && this.pendingBytes > 0) await this.flush();
    this.stream = stream;
    this.pending.push(data);
    this.pendingBytes += data.length;
    while (this.pendingBytes >= MAX_LOG_CHUNK_BYTES) await this.flushOne();
    if (this.pendingBytes > 0 && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.intervalMs);
      this.timer.unref();
    }
  }

  private async flushOne(): Promise<void> {
    // Only the buffers that reach one frame's size are joined (a copy of at most a frame and a
    // pipe read), never the whole backlog: the rest stays as the pipe delivered it.
    let n = 0;
    let bytes = 0;
    while (n < this.pending.length && bytes < MAX_LOG_CHUNK_BYTES) bytes += (this.pending[n++] as Buffer).length;
    const window = n === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending.slice(0, n), bytes);
    let cut = utf8Cut(window, MAX_LOG_CHUNK_BYTES);
    // A lone partial character at the end waits for its remaining bytes.
    if (cut === window.length) cut = completeUtf8Length(window);
    if (cut === 0) return;
    const rest = window.subarray(cut);
    const later = this.pending.slice(n);
    this.pending = rest.length ? [rest, ...later] : later;
    this.pendingBytes -= cut;
    const frame = { seq: this.seq++, stream: this.stream, stepId: this.stepId, data: window.toString("utf8", 0, cut) };
    await this.emit(frame);
  }

  async flush(force = false): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.pendingBytes > 0) {
      const before = this.pendingBytes;
      await this.flushOne();
      if (this.pendingBytes === before) {
        if (!force) return;
        // Invalid trailing bytes at the very end: send them replaced rather than lose them.
        const all = Buffer.concat(this.pending);
        this.pending = [];
        this.pendingBytes = 0;
        await this.emit({ seq: this.seq++, stream: this.stream, stepId: this.stepId, data: all.toString("utf8") });
      }
    }
  }
}

/** Length of buf without a trailing incomplete UTF-8 sequence. */
function completeUtf8Length(buf: Buffer): number {
  for (let back = 1; back <= Math.min(3, buf.length); back++) {
    const b = buf[buf.length - back] ?? 0;
    if ((b & 0xc0) === 0x80) continue; // continuation byte
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? buf.length - back : buf.length;
  }
  return buf.length;
}
