// Where a job's journal keeps the text of its log frames (up to JOURNAL_LOG_BYTES, for a replay
// after a reconnect): as UTF-8 in a few reused slabs, not as strings. Kept strings live long
// enough to be promoted to V8's old space, so every byte of a streamed log passed through it and
// waited there for a full GC: old space grew by tens of MB while a step streamed 50 MB of output.
// Slabs are written in order and freed in order (the journal prunes its oldest log frame first);
// a kept frame reads its text back only for a replay, as the same string (a well-formed string
// round-trips through UTF-8 exactly; any other is kept as it is).
import type { FencedAgentMessage } from "../../protocol/index.ts";

type LogFrame = Extract<FencedAgentMessage, { type: "log" }>;

/** Room per slab: many frames (≤ 64 KiB of UTF-8 each), few allocations. */
const SLAB_BYTES = 1024 * 1024;

interface Slab {
  buf: Buffer;
  used: number;
  /** Frames in it still kept. */
  live: number;
  /** Bumped when the slab is reused: a frame read after it was let go fails instead of reading another's bytes. */
  gen: number;
}

interface Place {
  slab: Slab;
  gen: number;
  at: number;
  bytes: number;
  /** The text's length in UTF-16 units, as the journal counts it. */
  chars: number;
}

export class LogKeep {
  private readonly slabs: Slab[] = [];
  private spare: Slab | undefined;
  private readonly places = new WeakMap<LogFrame, Place>();

  /** A frame like `frame` whose `data` is read back from here (its own string is not kept). */
  keep(frame: LogFrame): LogFrame {
    const data = frame.data;
    if (!isWellFormed(data)) return frame;
    const bytes = Buffer.byteLength(data, "utf8");
    const slab = this.room(bytes);
    slab.buf.write(data, slab.used, bytes, "utf8");
    const place: Place = { slab, gen: slab.gen, at: slab.used, bytes, chars: data.length };
    slab.used += bytes;
    slab.live += 1;
    const kept = { ...frame };
    // Redefined in place, `data` keeps its position among the keys: JSON.stringify of the kept
    // frame is the original's, byte for byte.
    Object.defineProperty(kept, "data", { enumerable: true, configurable: true, get: () => read(place) });
    this.places.set(kept, place);
    return kept;
  }

  /** `frame` under another lease token; a kept frame stays kept (its text is not read back). */
  relabel(frame: FencedAgentMessage, leaseToken: string): FencedAgentMessage {
    const place = frame.type === "log" ? this.places.get(frame) : undefined;
    if (!place || frame.type !== "log") return { ...frame, leaseToken };
    const copy = Object.defineProperties({}, Object.getOwnPropertyDescriptors(frame)) as LogFrame;
    copy.leaseToken = leaseToken;
    this.places.delete(frame);
    this.places.set(copy, place);
    return copy;
  }

  /**
   * The journal let go of `frame` (its oldest log frame): its bytes may be reused. Returns its
   * text's length in UTF-16 units (without reading it back).
   */
  release(frame: FencedAgentMessage): number {
    if (frame.type !== "log") return 0;
    const place = this.places.get(frame);
    if (!place) return frame.data.length;
    this.places.delete(frame);
    const slab = place.slab;
    slab.live -= 1;
    if (slab.live > 0 || slab === this.slabs.at(-1)) return place.chars;
    this.slabs.splice(this.slabs.indexOf(slab), 1);
    if (slab.buf.length === SLAB_BYTES) {
      slab.gen += 1;
      slab.used = 0;
      this.spare = slab;
    }
    return place.chars;
  }

  /** Bytes held in slabs (kept or free): what this keep costs. */
  get capacity(): number {
    return this.slabs.reduce((n, s) => n + s.buf.length, 0) + (this.spare?.buf.length ?? 0);
  }

  private room(bytes: number): Slab {
    const last = this.slabs.at(-1);
    if (last && last.buf.length - last.used >= bytes) return last;
    // The tail slab is full: one no longer in use is reused, so a long log cycles through a few.
    let slab = bytes <= SLAB_BYTES ? this.spare : undefined;
    if (slab) this.spare = undefined;
    else slab = { buf: Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, bytes)), used: 0, live: 0, gen: 0 };
    if (last && last.live === 0) {
      // An emptied tail is let go now that it is no longer the tail.
      this.slabs.pop();
      if (last.buf.length === SLAB_BYTES) {
        last.gen += 1;
        last.used = 0;
        this.spare ??= last;
      }
    }
    this.slabs.push(slab);
    return slab;
  }
}

function read(place: Place): string {
  if (place.slab.gen !== place.gen) throw new Error("log frame read after the journal let it go");
  return place.slab.buf.toString("utf8", place.at, place.at + place.bytes);
}

/** No lone surrogate (ES2024's String.prototype.isWellFormed, in Node ≥ 20). */
function isWellFormed(s: string): boolean {
  return (s as unknown as { isWellFormed(): boolean }).isWellFormed();
}
