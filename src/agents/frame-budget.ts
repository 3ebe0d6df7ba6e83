// Per-connection limits on what an agent may send: a frame-count token bucket (a flood closes the
// socket with 1008) and frame size caps before and after `hello`. Kept in memory: hibernation
// only happens when a connection is quiet, and a fresh bucket after it is full anyway.

/**
 * Frames a connection may send in a burst. A 50 MB log streams in ~800 frames of 64 KiB, and a
 * reconnect replays the agent's journal at once: both fit. 10,000 heartbeats in a row do not.
 */
export const FRAME_BURST = 2_000;
/** Frames per second the bucket refills: far above steady use (a log flush every 250 ms per job). */
export const FRAME_REFILL_PER_S = 200;

/**
 * Largest frame (JSON text, in characters) before `hello` is accepted: the token has been checked
 * by the Worker, but nothing is known about the client yet, and a hello is well under 4 KiB.
 */
export const MAX_FRAME_CHARS_BEFORE_HELLO = 16 * 1024;
/**
 * Largest frame after `hello`: a log chunk holds at most 64 Ki characters (MAX_LOG_CHUNK_BYTES),
 * which JSON escaping can grow six-fold (\u0000), and a `batch` carries several frames. 1 MiB is
 * also what a Worker takes in one WebSocket message (in bytes, never fewer than characters).
 */
export const MAX_FRAME_CHARS_AFTER_HELLO = 1024 * 1024;

/** A log chunk at least this long is a stream's output, not chatter: it costs a quarter token. */
export const STREAMING_LOG_CHARS = 16 * 1024;

/**
 * What a batch's contents cost. Each frame one token, but a long log chunk a quarter: a log
 * streaming at 50 MB/s comes in 800 chunks a second, and counted whole it would drain the
 * bucket within seconds. Short frames (the ones a flood is made of) keep their full cost.
 */
export function batchCost(frames: readonly { type: string; data?: string }[]): number {
  let cost = 0;
  for (const f of frames) cost += f.type === "log" && (f.data?.length ?? 0) >= STREAMING_LOG_CHARS ? 0.25 : 1;
  return cost;
}

export class TokenBucket {
  private tokens: number;
  private last: number;
  readonly capacity: number;
  readonly perSecond: number;

  constructor(capacity = FRAME_BURST, perSecond = FRAME_REFILL_PER_S, now = Date.now()) {
    this.capacity = capacity;
    this.perSecond = perSecond;
    this.tokens = capacity;
    this.last = now;
  }

  /** Takes `n` tokens (a batch frame counts by its contents); false when there are not enough. */
  take(now = Date.now(), n = 1): boolean {
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }
}

/** The size of a frame in the unit the caps use (characters of text, bytes of binary). */
export function frameSize(raw: string | ArrayBuffer): number {
  return typeof raw === "string" ? raw.length : raw.byteLength;
}
