// A job's final log, archived when it ends (the archive_log effect). Most logs are small: one of
// at most LEDGER_LOG_MAX_BYTES goes onto the job's ledger row instead of an R2 put (a Class A
// operation, and as much CPU as a D1 round trip): normally with the final ledger write itself
// (drain.ts), else by the effect's own UPDATE. A larger one is streamed to R2 as
// logs/jobs/{jobId}.log with a known length. GET /api/jobs/:id/log reads the row first.
import { writeJobLog } from "../ledger/store.ts";
import type { LogBuffer } from "./log-buffer.ts";

/** The largest final log kept on the ledger row, in UTF-8 bytes. */
export const LEDGER_LOG_MAX_BYTES = 4 * 1024;

export const logKey = (jobId: string): string => `logs/jobs/${jobId}.log`;

/** Which way the log went, for the job's operation counters. */
export type ArchiveOp = "archive_log_ledger" | "archive_log_r2" | "archive_log_r2_no_row";

/**
 * The whole log when its UTF-8 form is at most `max` bytes, as the text those bytes decode to
 * (what D1 stores is then exactly what R2 would have held: a lone surrogate is U+FFFD in both);
 * null when larger. A UTF-16 unit is at least one UTF-8 byte, so a long log is given up on
 * after `max` units, without joining or encoding the rest of it.
 */
export function smallLog(logs: LogBuffer, max = LEDGER_LOG_MAX_BYTES): string | null {
  const parts: string[] = [];
  let units = 0;
  for (const chunk of logs.chunks()) {
    units += chunk.length;
    if (units > max) return null;
    parts.push(chunk);
  }
  const bytes = new TextEncoder().encode(parts.join(""));
  return bytes.length > max ? null : new TextDecoder().decode(bytes);
}

/**
 * Archives the log; idempotent (a retry writes the same text, or puts the same object again).
 * A job whose ledger row is not written yet (its ledger lane waiting behind a failed write; the
 * archive lane does not wait for it) gets its log in R2: the row is never created from here, as
 * that would race the ledger's own ordered writes.
 */
export async function archiveLog(env: Pick<Env, "DB" | "ARCHIVE">, jobId: string, logs: LogBuffer): Promise<ArchiveOp> {
  const text = smallLog(logs);
  if (text !== null) {
    if (await writeJobLog(env.DB, jobId, text)) return "archive_log_ledger";
    await putLogInR2(env.ARCHIVE, jobId, logs);
    return "archive_log_r2_no_row";
  }
  await putLogInR2(env.ARCHIVE, jobId, logs);
  return "archive_log_r2";
}

/** Writes the whole log to R2, streamed with a known length; returns its size in bytes. */
export async function putLogInR2(bucket: R2Bucket, jobId: string, logs: LogBuffer): Promise<number> {
  const enc = new TextEncoder();
  let length = 0;
  for (const chunk of logs.chunks()) length += enc.encode(chunk).length;
  const { readable, writable } = new FixedLengthStream(length);
  const put = bucket.put(logKey(jobId), readable, { httpMetadata: { contentType: "text/plain; charset=utf-8" } });
  const write = (async () => {
    const writer = writable.getWriter();
    for (const chunk of logs.chunks()) await writer.write(enc.encode(chunk));
    await writer.close();
  })();
  // Both at once: a put that fails before reading the whole body would otherwise leave the
  // writer waiting forever (wedging the job's outbox) and its own rejection unhandled.
  await Promise.all([put, write]);
  return length;
}
