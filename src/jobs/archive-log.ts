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

/** How much of a log is written to R2 between turns given to the object's other requests. */
const TURN_BYTES = 4 * 1024 * 1024;

/** Lets the event loop run what is waiting (a timer, not a microtask: I/O and other requests go too). */
const turn = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** What was read differs from what was counted: the length given to R2 was not the log's. */
class LengthChanged extends Error {}

/**
 * Writes the whole log to R2, streamed with a known length; returns its size in bytes. The
 * length is the stored rows' (counted by SQLite, not read through), so the log is read once;
 * should what is read differ from it (a row redacted again as it is read), the put is abandoned
 * before its last byte and made again with the length measured over a first reading.
 */
export async function putLogInR2(bucket: R2Bucket, jobId: string, logs: LogBuffer): Promise<number> {
  // What waited for the commit that queued this (a client's wait for the job's end) goes first.
  await turn();
  const stored = logs.storedUtf8Bytes();
  try {
    await streamToR2(bucket, jobId, stored, logs.chunks(), true);
    return stored;
  } catch (err) {
    if (!(err instanceof LengthChanged)) throw err;
  }
  const enc = new TextEncoder();
  let length = 0;
  for (const chunk of logs.chunks()) length += enc.encode(chunk).length;
  await streamToR2(bucket, jobId, length, logs.chunks(), false);
  return length;
}

/** Streams `chunks` as the object's body of `length` bytes; `exact`: refuses any other size. */
async function streamToR2(
  bucket: R2Bucket,
  jobId: string,
  length: number,
  chunks: Iterable<string>,
  exact: boolean,
): Promise<void> {
  const enc = new TextEncoder();
  const { readable, writable } = new FixedLengthStream(length);
  const writer = writable.getWriter();
  const put = bucket.put(logKey(jobId), readable, { httpMetadata: { contentType: "text/plain; charset=utf-8" } });
  // A put that fails before reading the whole body would leave a write waiting forever (wedging
  // the job's outbox): the body is abandoned with it.
  put.catch((err: unknown) => writer.abort(err).catch(() => undefined));
  const write = (async () => {
    try {
      let written = 0;
      let sinceTurn = 0;
      for (const chunk of chunks) {
        const bytes = enc.encode(chunk);
        written += bytes.length;
        if (exact && written > length) throw new LengthChanged();
        await writer.write(bytes);
        // A write the stream takes at once does not leave the event loop: the object's other
        // requests get their turn every few MB of a large log.
        sinceTurn += bytes.length;
        if (sinceTurn >= TURN_BYTES) {
          sinceTurn = 0;
          await turn();
        }
      }
      if (exact && written !== length) throw new LengthChanged();
      await writer.close();
    } catch (err) {
      // The put sees its body fail and stores nothing.
      await writer.abort(err).catch(() => undefined);
      throw err;
    }
  })();
  const [putResult, writeResult] = await Promise.allSettled([put, write]);
  // A count that was wrong is the caller's to handle (it measures and puts again); else the
  // put's own failure says most.
  if (writeResult.status === "rejected" && writeResult.reason instanceof LengthChanged) throw writeResult.reason;
  if (putResult.status === "rejected") throw putResult.reason;
  if (writeResult.status === "rejected") throw writeResult.reason;
}
