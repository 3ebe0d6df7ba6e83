// Writes a job's whole log to R2 as logs/jobs/{jobId}.log, streamed with a known length.
import type { LogBuffer } from "./log-buffer.ts";

export const logKey = (jobId: string): string => `logs/jobs/${jobId}.log`;

export async function archiveLog(bucket: R2Bucket, jobId: string, logs: LogBuffer): Promise<number> {
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
