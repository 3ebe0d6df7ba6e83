// A streaming log's rows (issue 17, logs at ≥ 50 MB/s): each new batch is checked for a secret
// split across rows against the tail of the rows just written, not against rows read back from
// storage, and is known new without a lookup. What may not change: a secret split across rows is
// still redacted, also when rows arrive out of order, and resent frames are still stored once.
import { describe, expect, it } from "vitest";
import { LogBuffer, type LogChunkInput } from "../src/jobs/log-buffer.ts";
import { Redactor } from "../src/lib/redact.ts";
import { countingSql, inObject } from "./helpers/log-sql.ts";

const chunk = (seq: number, data: string): LogChunkInput => ({ attempt: 1, seq, stepId: "s1", stream: "stdout", data });
const SECRET = [{ name: "API_TOKEN", value: "test-api-token" }];

/** The object's SQL, with the statements that read the log's rows counted. */
const readsOf = (sql: SqlStorage) => countingSql(sql, (q) => /^\s*SELECT/.test(q) && /FROM log_chunks/.test(q));

describe("a streaming log's rows", () => {
  it("stores batch after batch without reading earlier rows back, and still redacts a secret split across them", async () => {
    await inObject("log-stream-rows-tail", (raw) => {
      const { sql, reads } = readsOf(raw);
      const log = new LogBuffer(sql, new Redactor(SECRET));
      const sent: string[] = [];
      const batch = (seq: number, data: string) => {
        sent.push(data);
        log.appendMany([chunk(seq, data.slice(0, 3)), chunk(seq + 1, data.slice(3))]);
      };
      for (let i = 0; i < 20; i += 2) batch(i, `line ${i} ${"x".repeat(2000)}\n`);
      const streaming = reads.length;
      // The first batch looks (there may be rows); the other nine know what they follow.
      expect(streaming).toBeLessThanOrEqual(2);
      // A secret split across two batches' rows: found in the tail, its start rewritten.
      batch(20, "tail test-ap");
      batch(22, "i-token end\n");
      const whole = [...log.chunks()].join("");
      expect(whole).toBe(`${sent.slice(0, 10).join("")}tail [redacted API_TOKEN] end\n`);
      expect([...new LogBuffer(raw).chunks()].join("")).toBe(whole);
      // Resent frames of a batch already stored are stored once.
      log.appendMany([chunk(22, "i-t"), chunk(23, "oken end\n")]);
      expect([...log.chunks()].join("")).toBe(whole);
    });
  });

  it("redacts a secret split across rows that were written out of order", async () => {
    await inObject("log-stream-rows-order", (sql) => {
      const log = new LogBuffer(sql, new Redactor(SECRET));
      log.appendMany([chunk(0, "a\n")]);
      log.appendMany([chunk(2, "c test-ap")]); // ahead of 1 (a gap)
      log.appendMany([chunk(1, "b\n")]); // the gap filled: the tail of the log is still row 2's
      log.appendMany([chunk(3, "i-token d\n")]);
      expect([...log.chunks()].join("")).toBe("a\nb\nc [redacted API_TOKEN] d\n");
    });
  });

  it("stores the frames of a gap once they come, and a resent frame once", async () => {
    await inObject("log-stream-rows-gap", (sql) => {
      const log = new LogBuffer(sql);
      log.appendMany([chunk(0, "a\n"), chunk(1, "b\n")]);
      log.appendMany([chunk(4, "e\n"), chunk(5, "f\n")]);
      log.appendMany([chunk(2, "c\n"), chunk(3, "d\n")]);
      log.appendMany([chunk(5, "f\n"), chunk(6, "g\n")]);
      expect(log.append(chunk(3, "d\n"))).toBe(false);
      expect([...log.chunks()].join("")).toBe("a\nb\nc\nd\ne\nf\ng\n");
      expect(log.lastSeq(1)).toBe(6);
    });
  });
});
