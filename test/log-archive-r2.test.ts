// A large final log goes to R2 read once (archive-log.ts): its length is the stored rows' UTF-8
// size as SQLite counts it, so the rows are not read through a first time to measure them (a
// 50 MB log held the whole isolate for ≈ 1 s doing so, and a client's wait for the job's end
// waited behind it). Whatever the text, the object is byte for byte what the log reads back as;
// a row that reads back different (redacted again as it is read) makes the put start over with
// the length measured.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { logKey, putLogInR2 } from "../src/jobs/archive-log.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import { LogBuffer, type LogChunkInput } from "../src/jobs/log-buffer.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { Redactor } from "../src/lib/redact.ts";
import { countingSql } from "./helpers/log-sql.ts";

const chunk = (seq: number, data: string): LogChunkInput => ({ attempt: 1, seq, stepId: "s1", stream: "stdout", data });

/** Statements that read the log's text. */
const readsText = (q: string) => /FROM log_chunks/.test(q) && /SELECT (attempt, seq, )?data/.test(q);

/** Writes `chunks` (one row each) into a job object's log table, then archives them from a fresh buffer. */
async function archived(name: string, chunks: string[], redactor?: Redactor) {
  const jobId = newJobId();
  return runInDurableObject(env.JOB.getByName(name), async (_i: JobDO, state) => {
    const writer = new LogBuffer(state.storage.sql);
    chunks.forEach((data, seq) => {
      writer.append(chunk(seq, data));
    });
    // A fresh buffer, as after a restart: it has not seen the rows, so it reads the table.
    const counted = countingSql(state.storage.sql, readsText);
    const logs = new LogBuffer(counted.sql, redactor);
    const expected = new TextEncoder().encode([...logs.chunks()].join(""));
    counted.reads.length = 0;
    const length = await putLogInR2(env.ARCHIVE, jobId, logs);
    const object = await env.ARCHIVE.get(logKey(jobId));
    const body = new Uint8Array((await object?.arrayBuffer()) ?? new ArrayBuffer(0));
    return { length, expected, body, size: object?.size, reads: counted.reads.length };
  });
}

describe("a large log archived to R2", () => {
  it("is read once, its length counted by SQLite, byte-exact whatever the text", async () => {
    const chunks = [
      "plain ascii line\n".repeat(4000),
      "é€😀 multi-byte\n".repeat(3000),
      "nul:\u0000:end\r\n",
      "lone:\ud800:end\n",
      "pair split? \ud83d",
      "\ude80 done\n",
      "語".repeat(20_000),
    ];
    const r = await archived("archive-r2-once", chunks);
    expect(r.body).toEqual(r.expected);
    expect(r.length).toBe(r.expected.length);
    expect(r.size).toBe(r.expected.length);
    expect(r.reads).toBe(1);
  });

  it("starts over with the length measured when a row reads back redacted (stored before redaction)", async () => {
    const secret = "sk-archive-secret-0123456789";
    const chunks = ["x".repeat(20_000), `key=${secret}\n`, "y".repeat(20_000)];
    const r = await archived("archive-r2-redacted", chunks, new Redactor([{ name: "API_TOKEN", value: secret }]));
    expect(new TextDecoder().decode(r.body)).not.toContain(secret);
    expect(new TextDecoder().decode(r.body)).toContain("key=[redacted API_TOKEN]\n");
    expect(r.body).toEqual(r.expected);
    expect(r.size).toBe(r.expected.length);
    expect(r.reads).toBeGreaterThan(1);
  });
});
