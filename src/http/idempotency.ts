// Idempotency-Key for job-creating requests (POST /api/tasks, POST /execute): the first request
// with a key records (caller, key) → (request hash, job id) in D1 before the job is made; a
// repeat with the same request gets that job back (even if the first one failed half-way, the job
// is made then), a repeat with a different request is refused with 409.
import { and, eq } from "drizzle-orm";
import type { Context } from "hono";
import { z } from "zod";
import type { JobView } from "../../protocol/index.ts";
import { idempotencyKeys } from "../ledger/schema.ts";
import { getDb } from "../ledger/store.ts";
import { sha256Hex } from "../lib/crypto.ts";
import { ApiError, parseOr400 } from "./errors.ts";

export const IDEMPOTENCY_HEADER = "Idempotency-Key";
/**
 * A key is remembered this long (as Stripe's are); an older one is a new key. It must stay well
 * below JOB_STATE_RETENTION_DAYS, so a replay never finds its job's live record deleted and
 * makes the job again.
 */
export const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60_000;

const KeySchema = z
  .string()
  .min(1, "must not be empty")
  .max(200, "at most 200 characters")
  .regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces");

/** The request's Idempotency-Key, or null when it has none; a malformed key is a 400. */
export function idempotencyKeyOf(c: Context): string | null {
  const raw = c.req.header(IDEMPOTENCY_HEADER);
  if (raw === undefined) return null;
  return parseOr400(KeySchema, raw, `${IDEMPOTENCY_HEADER} header`);
}

export interface Idempotent {
  /** Who is asking: keys never collide between callers. */
  scope: string;
  key: string;
  /** What identifies the request: the route and its parsed body. */
  request: unknown;
  /** The id the job gets if this is the first request with the key. */
  newJobId: string;
  find: (jobId: string) => Promise<JobView | null>;
  create: (jobId: string) => Promise<JobView>;
}

/** The job for this key: `replayed` when it existed already (the caller answers 200, not 202). */
export async function idempotentCreate(env: Env, o: Idempotent): Promise<{ job: JobView; replayed: boolean }> {
  const db = getDb(env.DB);
  const requestHash = await sha256Hex(JSON.stringify(o.request));
  const where = and(eq(idempotencyKeys.scope, o.scope), eq(idempotencyKeys.key, o.key));
  const inserted = await db
    .insert(idempotencyKeys)
    .values({ scope: o.scope, key: o.key, requestHash, jobId: o.newJobId, createdAt: Date.now() })
    .onConflictDoNothing()
    .returning({ jobId: idempotencyKeys.jobId });
  if (inserted.length > 0) return { job: await o.create(o.newJobId), replayed: false };
  const [row] = await db.select().from(idempotencyKeys).where(where).limit(1);
  if (!row) throw new ApiError("internal", "idempotency key was not recorded");
  if (row.createdAt < Date.now() - IDEMPOTENCY_WINDOW_MS) {
    // Expired: forget it (only that row, in case another request renewed it meanwhile) and
    // take this request as the first with the key.
    await db.delete(idempotencyKeys).where(and(where, eq(idempotencyKeys.createdAt, row.createdAt)));
    return idempotentCreate(env, { ...o });
  }
  if (row.requestHash !== requestHash) {
    throw new ApiError(
      "conflict",
      `${IDEMPOTENCY_HEADER} ${JSON.stringify(o.key)} was already used with a different request (job ${row.jobId}); use a new key for a new request`,
    );
  }
  const existing = await o.find(row.jobId);
  if (existing) return { job: existing, replayed: true };
  return { job: await o.create(row.jobId), replayed: false };
}
