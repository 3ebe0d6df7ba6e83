// Gathers an attempt's job frames for a few milliseconds and sends them as one `batch` frame, so
// a short step's start, output, finish and the job's result cost the server one frame and one
// JobDO call instead of one each. Frames are serialised once, on arrival, straight into the
// batch's buffer as UTF-8 (their JSON joined, never parsed or re-serialised); a sent batch's
// buffer takes a later batch once the socket is done with it. Order is kept per attempt, and
// every send that must come after these frames (a keepalive whose answer proves delivery,
// another kind of frame) flushes them first. The one exception to serialising on arrival is an
// accept: it is kept as an object until its batch goes, then stamped with how long it waited
// (`heldMs`), so the server can date the attempt's start to when the agent took it rather than
// when the batch arrived.
import { type BatchableMessage, MAX_ACCEPT_HELD_MS, MAX_BATCH_FRAMES } from "../../protocol/index.ts";

export interface BatchTuning {
  /** How long the first frame of a batch may wait for company. */
  lingerMs: number;
  /**
   * The same for a batch led by an accept: long enough for a short step to start, run and end
   * in it (one frame, one call on the server for the whole job; `git status` through the agent
   * took 25–50 ms on a loaded bench machine), short enough that the accept of a long step still
   * reaches the server far inside its accept deadline (30 s by default). A writing step's start
   * and the result are sent at once, taking the accept with them.
   */
  acceptLingerMs: number;
  /**
   * Most UTF-8 bytes of frames in one batch. A Worker takes WebSocket messages up to 1 MiB
   * (bytes), and the registry's cap counts characters, never more than bytes: one bound in
   * bytes under both keeps every batch deliverable, whatever the output's alphabet.
   */
  maxBytes: number;
  maxFrames: number;
}

export const DEFAULT_BATCH_TUNING: BatchTuning = {
  lingerMs: 5,
  acceptLingerMs: 50,
  // Under the registry's cap (MAX_FRAME_CHARS_AFTER_HELLO) with room for the envelope; a lone
  // 64 KiB log chunk escaped six-fold (384 KiB) fits too.
  maxBytes: 960 * 1024,
  maxFrames: MAX_BATCH_FRAMES,
};

/** An accept waiting in a batch: serialised when it goes, with the time it waited. */
interface HeldAccept {
  frame: Extract<BatchableMessage, { type: "job_accept" }>;
  madeAt: number;
}

/** Room kept for the `heldMs` stamp when an accept's size is counted (`,"heldMs":60000`). */
const HELD_STAMP_BYTES = `,"heldMs":${MAX_ACCEPT_HELD_MS}`.length;

const BATCH_HEAD = '{"type":"batch","frames":[';
const BATCH_TAIL = "]}";

/**
 * A batch being gathered. Its frames' JSON is written into `buf` as UTF-8 as they arrive (from
 * `start`, comma-separated), so no frame's text outlives its arrival: strings kept until the
 * flush lived long enough to be promoted, and the whole stream went through V8's old space. The
 * room before `start` takes the batch's head and a leading accept, stamped when the batch goes.
 */
interface Pending {
  head: HeldAccept | null;
  buf: Buffer;
  start: number;
  at: number;
  /** Frames written into buf (the head not counted). */
  written: number;
  /** UTF-8 bytes of the frames and their commas, the head's with room for its stamp. */
  bytes: number;
  timer: NodeJS.Timeout | undefined;
  lingerMs: number;
}

/** A send's completion: the data it was given is no longer read (an error: maybe not sent). */
export type SendDone = (err?: Error | null) => void;

/** Batch buffers kept for the next batches, once the socket is done with them. */
const POOL_MAX = 2;

export class FrameBatcher {
  private readonly pending = new Map<string, Pending>();
  /** Work in progress on the next frame (its journal write): lingers that end meanwhile wait for it. */
  private holds = 0;
  private readonly expired = new Set<string>();
  /**
   * A frame's or a batch's JSON (a batch as UTF-8 bytes), for one text WebSocket message; `done`
   * is called once the data is no longer read, and a batch's buffer is then used again.
   */
  private readonly send: (text: string | Buffer, done?: SendDone) => void;
  private readonly tuning: BatchTuning;
  /** Monotonic milliseconds: a wall-clock step (NTP) must not change how long an accept waited. */
  private readonly clock: () => number;
  /** Buffers of sent batches the socket has finished with (each large enough for any batch). */
  private readonly pool: Buffer[] = [];

  constructor(
    send: (text: string | Buffer, done?: SendDone) => void,
    tuning: Partial<BatchTuning> = {},
    clock: () => number = () => performance.now(),
  ) {
    this.send = send;
    this.tuning = { ...DEFAULT_BATCH_TUNING, ...tuning };
    this.clock = clock;
  }

  /** Queues a frame; `now` sends it (with what waits before it) at once. */
  add(frame: BatchableMessage, now: boolean): void {
    const key = `${frame.jobId}#${frame.attempt}`;
    let p = this.pending.get(key);
    if (frame.type === "job_accept") {
      // An accept leads its batch (the first frame of its attempt): it is stamped when it goes.
      if (p) this.flushKey(key);
      const head = { frame, madeAt: this.clock() };
      const bytes = Buffer.byteLength(JSON.stringify(frame), "utf8") + HELD_STAMP_BYTES;
      if (now || bytes > this.tuning.maxBytes) {
        this.send(this.stamped(head));
        return;
      }
      p = this.open(key, head, bytes);
      if (this.tuning.maxFrames <= 1) this.flushKey(key);
      return;
    }
    const json = JSON.stringify(frame);
    if (!p) {
      const bytes = Buffer.byteLength(json, "utf8");
      if (now || bytes > this.tuning.maxBytes) {
        this.send(json);
        return;
      }
      p = this.open(key, null, 0);
    }
    const mark = { at: p.at, written: p.written };
    let bytes = this.write(p, json);
    if (bytes === null || p.bytes + bytes > this.tuning.maxBytes) {
      // Over the bound: what waits goes first (without this frame), and this frame starts the
      // next batch (or goes alone).
      p.at = mark.at;
      p.written = mark.written;
      this.flushKey(key);
      bytes = Buffer.byteLength(json, "utf8");
      if (now || bytes > this.tuning.maxBytes) {
        this.send(json);
        return;
      }
      p = this.open(key, null, 0);
      bytes = this.write(p, json) ?? 0;
    }
    p.bytes += bytes + 1; // and its comma
    if (now || p.written + (p.head ? 1 : 0) >= this.tuning.maxFrames) this.flushKey(key);
  }

  /** A new batch for `key`, with room before its frames for its head (and `head`, if any). */
  private open(key: string, head: HeldAccept | null, headBytes: number): Pending {
    const buf = this.pool.pop() ?? Buffer.allocUnsafeSlow(this.capacity());
    const start = BATCH_HEAD.length + (head ? headBytes + 1 : 0);
    const lingerMs = head ? this.tuning.acceptLingerMs : this.tuning.lingerMs;
    const p: Pending = {
      head,
      buf,
      start,
      at: start,
      written: 0,
      bytes: head ? headBytes + 1 : 0,
      timer: undefined,
      lingerMs,
    };
    this.pending.set(key, p);
    this.arm(key, p);
    return p;
  }

  /** A batch buffer's size: the head, the most a batch holds, and its tail. */
  private capacity(): number {
    return BATCH_HEAD.length + this.tuning.maxBytes + 1 + BATCH_TAIL.length;
  }

  /**
   * Writes a frame's JSON after the batch's frames; returns its UTF-8 bytes, or null (nothing
   * written) when it may not fit what is left of the buffer.
   */
  private write(p: Pending, json: string): number | null {
    const comma = p.written > 0 ? 1 : 0;
    const room = p.buf.length - BATCH_TAIL.length - p.at - comma;
    // A UTF-16 unit is at most 3 bytes of UTF-8: past that bound, the exact size decides.
    if (json.length * 3 > room && Buffer.byteLength(json, "utf8") > room) return null;
    if (comma) p.buf[p.at] = 0x2c; // ","
    const n = p.buf.write(json, p.at + comma, "utf8");
    p.at += comma + n;
    p.written += 1;
    return n;
  }

  /**
   * The next frame is on its way (written to the journal first): a linger ending meanwhile does
   * not send its batch without it, and starts again once it is added — the linger counts the
   * time the agent waits for more, not the time it spends journaling the frames it sends. Each
   * hold() is paired with a release() once the frame is added; a frame that sends at once
   * (a result) takes the batch with it.
   */
  hold(): void {
    this.holds += 1;
  }

  release(): void {
    this.holds = Math.max(0, this.holds - 1);
    if (this.holds > 0) return;
    for (const key of this.expired) {
      const p = this.pending.get(key);
      if (p) this.arm(key, p);
    }
    this.expired.clear();
  }

  /** Sends everything waiting, oldest attempt first. */
  flush(): void {
    for (const key of [...this.pending.keys()]) this.flushKey(key);
  }

  /** The connection is gone: what waits is dropped (the job's journal replays it). */
  drop(): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      this.reuse(p.buf);
    }
    this.pending.clear();
    this.expired.clear();
  }

  get waiting(): number {
    let n = 0;
    for (const p of this.pending.values()) n += p.written + (p.head ? 1 : 0);
    return n;
  }

  private arm(key: string, p: Pending): void {
    clearTimeout(p.timer);
    p.timer = setTimeout(() => {
      if (this.holds > 0) this.expired.add(key);
      else this.flushKey(key);
    }, p.lingerMs);
    p.timer.unref();
  }

  private reuse(buf: Buffer): void {
    if (this.pool.length < POOL_MAX) this.pool.push(buf);
  }

  private flushKey(key: string): void {
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    this.expired.delete(key);
    clearTimeout(p.timer);
    const frames = p.written + (p.head ? 1 : 0);
    // One frame goes as itself, not wrapped in a batch.
    if (frames === 1 && p.head) {
      this.reuse(p.buf);
      this.send(this.stamped(p.head));
      return;
    }
    const done: SendDone = (err) => {
      if (!err) this.reuse(p.buf);
    };
    if (frames === 1) {
      this.send(p.buf.subarray(p.start, p.at), done);
      return;
    }
    if (frames === 0) {
      this.reuse(p.buf);
      return;
    }
    // The head (and the stamped accept) go right before the frames, in the room kept for them.
    const head = p.head ? `${BATCH_HEAD}${this.stamped(p.head)},` : BATCH_HEAD;
    const from = p.start - Buffer.byteLength(head, "utf8");
    p.buf.write(head, from, "utf8");
    const end = p.at + p.buf.write(BATCH_TAIL, p.at, "latin1");
    this.send(p.buf.subarray(from, end), done);
  }

  /** An accept's JSON, stamped with how long it waited until now. */
  private stamped(head: HeldAccept): string {
    return JSON.stringify({ ...head.frame, heldMs: heldMsSince(head.madeAt, this.clock()) });
  }
}

/** An accept's `heldMs`: whole ms from `madeAt` to `now` (monotonic), within the protocol's range. */
export function heldMsSince(madeAt: number, now: number = performance.now()): number {
  return Math.min(MAX_ACCEPT_HELD_MS, Math.max(0, Math.round(now - madeAt)));
}
