// Gathers an attempt's job frames for a few milliseconds and sends them as one `batch` frame, so
// a short step's start, output, finish and the job's result cost the server one frame and one
// JobDO call instead of one each. Frames are serialised once, on arrival; a batch is their JSON
// joined, never parsed or re-serialised. Order is kept per attempt, and every send that must
// come after these frames (a keepalive whose answer proves delivery, another kind of frame)
// flushes them first. The one exception to serialising on arrival is an accept: it is kept as
// an object until its batch goes, then stamped with how long it waited (`heldMs`), so the server
// can date the attempt's start to when the agent took it rather than when the batch arrived.
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

interface Pending {
  parts: (string | HeldAccept)[];
  bytes: number;
  timer: NodeJS.Timeout | undefined;
  lingerMs: number;
}

export class FrameBatcher {
  private readonly pending = new Map<string, Pending>();
  /** Work in progress on the next frame (its journal write): lingers that end meanwhile wait for it. */
  private holds = 0;
  private readonly expired = new Set<string>();
  /** A frame's or a batch's JSON (a batch as UTF-8 bytes), for one text WebSocket message. */
  private readonly send: (text: string | Buffer) => void;
  private readonly tuning: BatchTuning;
  /** Monotonic milliseconds: a wall-clock step (NTP) must not change how long an accept waited. */
  private readonly clock: () => number;

  constructor(
    send: (text: string | Buffer) => void,
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
    const part: string | HeldAccept =
      frame.type === "job_accept" ? { frame, madeAt: this.clock() } : JSON.stringify(frame);
    const bytes =
      typeof part === "string"
        ? Buffer.byteLength(part, "utf8")
        : Buffer.byteLength(JSON.stringify(frame), "utf8") + HELD_STAMP_BYTES;
    let p = this.pending.get(key);
    if (p && p.bytes + bytes > this.tuning.maxBytes) {
      this.flushKey(key);
      p = undefined;
    }
    if (!p) {
      if (now || bytes > this.tuning.maxBytes) {
        this.send(this.text(part));
        return;
      }
      const lingerMs = frame.type === "job_accept" ? this.tuning.acceptLingerMs : this.tuning.lingerMs;
      p = { parts: [], bytes: 0, timer: undefined, lingerMs };
      this.pending.set(key, p);
      this.arm(key, p);
    }
    p.parts.push(part);
    p.bytes += bytes + 1; // and its comma
    if (now || p.parts.length >= this.tuning.maxFrames) this.flushKey(key);
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
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    this.expired.clear();
  }

  get waiting(): number {
    let n = 0;
    for (const p of this.pending.values()) n += p.parts.length;
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

  private flushKey(key: string): void {
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    this.expired.delete(key);
    clearTimeout(p.timer);
    const texts = p.parts.map((part) => this.text(part));
    if (texts.length === 1) this.send(texts[0] as string);
    else if (texts.length > 1) this.send(batchBytes(texts, p.bytes));
  }

  /** A frame's JSON; an accept's stamped with how long it waited until now. */
  private text(part: string | HeldAccept): string {
    if (typeof part === "string") return part;
    return JSON.stringify({ ...part.frame, heldMs: heldMsSince(part.madeAt, this.clock()) });
  }
}

const BATCH_HEAD = '{"type":"batch","frames":[';

/**
 * `{"type":"batch","frames":[…]}` written straight into one buffer as UTF-8: a joined string of
 * up to maxBytes would be a large object, kept on the heap until a full GC, and the socket would
 * encode it to bytes again anyway. `bytes` bounds the frames' UTF-8 and their commas.
 */
function batchBytes(texts: string[], bytes: number): Buffer {
  const buf = Buffer.allocUnsafe(BATCH_HEAD.length + bytes + 2);
  let at = buf.write(BATCH_HEAD, 0, "latin1");
  texts.forEach((text, i) => {
    if (i > 0) at = buf.writeUInt8(0x2c, at); // ","
    at += buf.write(text, at, "utf8");
  });
  at += buf.write("]}", at, "latin1");
  return buf.subarray(0, at);
}

/** An accept's `heldMs`: whole ms from `madeAt` to `now` (monotonic), within the protocol's range. */
export function heldMsSince(madeAt: number, now: number = performance.now()): number {
  return Math.min(MAX_ACCEPT_HELD_MS, Math.max(0, Math.round(now - madeAt)));
}
