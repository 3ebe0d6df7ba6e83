// Per-user task rate limit as a Durable Object counter (one object per user, named by the
// user id): a sliding minute kept in memory, so a /task costs one object request and no D1
// read. An object evicted after idling longer than the window forgets nothing that still
// counts; one restarted mid-window (a deploy) starts that user's minute afresh — lenient,
// never wrongly strict.
import { DurableObject } from "cloudflare:workers";

export class RateLimitDO extends DurableObject<Env> {
  private recent: number[] = [];

  /** Counts one use if fewer than `limit` happened in the last `windowMs`; false when over. */
  async take(limit: number, windowMs: number): Promise<boolean> {
    const now = Date.now();
    this.recent = this.recent.filter((t) => t > now - windowMs);
    if (this.recent.length >= limit) return false;
    this.recent.push(now);
    return true;
  }
}

export async function takeTaskSlot(env: Env, userId: string, limit: number): Promise<boolean> {
  return env.RATE_LIMIT.get(env.RATE_LIMIT.idFromName(`task:${userId}`)).take(limit, 60_000);
}
