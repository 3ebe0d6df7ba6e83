// A small log rides on the job's state record (issue 18, cost per job): no log table and no row
// write of its own while it stays under INLINE_MAX_BYTES; past that it moves, whole, into the
// table, with nothing lost or duplicated — also across a restart, and with its readers (tail,
// search, the live stream, step outputs, the archive) seeing the same bytes in either place.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { newJobState } from "../src/jobs/decisions.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import { INLINE_MAX_BYTES, LogBuffer, type LogChunkInput, type LogRow } from "../src/jobs/log-buffer.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { Redactor } from "../src/lib/redact.ts";
import { storeOver } from "./helpers/job-insides.ts";

const chunk = (seq: number, data: string, more: Partial<LogChunkInput> = {}): LogChunkInput => ({
  attempt: 1,
  seq,
  stepId: "s1",
  stream: "stdout",
  data,
  ...more,
});

const hasTable = (sql: SqlStorage) =>
  sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'log_chunks'").toArray().length > 0;

/** A line of exactly `bytes` bytes naming its seq. */
const line = (seq: number, bytes: number) => `${`line ${seq} `.padEnd(bytes - 1, "x")}\n`;

describe("a job's log on its state record", () => {
  it("keeps a small log on the record (no table), and moves it whole to the table once it outgrows it", async () => {
    const jobId = newJobId();
    await runInDurableObject(env.JOB.getByName(jobId), (_i: JobDO, state) => {
      const sql = state.storage.sql;
      const store = storeOver(state.storage);
      store.commit(newJobState({ jobId, projectId: "p", intent: "check git status", userId: "u", chatId: null }, 1));
      const record = () => state.storage.kv.get<{ log?: LogRow[] }>("job");
      const sent: string[] = [];
      let crossedAt = -1;
      for (let seq = 0; seq < 40; seq++) {
        const data = line(seq, 1000);
        sent.push(data);
        // Each frame alone, each stored by the write that follows it (an agent's log frame).
        store.logs.appendMany([chunk(seq, data)]);
        store.flush();
        const onRecord = record()?.log;
        if (crossedAt < 0 && hasTable(sql)) crossedAt = seq;
        if (crossedAt < 0) {
          // Still small: the record holds every frame so far, in order, and there is no table.
          expect(onRecord?.map((r) => r.data).join("")).toBe(sent.join(""));
        } else expect(onRecord).toBeUndefined();
      }
      // It moved at the frame that took it past the bound, not before and not after.
      expect(crossedAt).toBe(Math.floor(INLINE_MAX_BYTES / 1000));
      const whole = sent.join("");
      expect([...store.logs.chunks()].join("")).toBe(whole);
      // One row per frame in the table: none lost, none twice.
      const seqs = sql
        .exec<{ seq: number }>("SELECT seq FROM log_chunks ORDER BY seq")
        .toArray()
        .map((r) => r.seq);
      expect(seqs).toEqual(Array.from({ length: 40 }, (_, i) => i));
      // A restart reads the same bytes from the table, and refuses resent frames from either side of the move.
      const again = storeOver(state.storage);
      expect([...again.logs.chunks()].join("")).toBe(whole);
      expect(again.logs.append(chunk(3, line(3, 1000)))).toBe(false);
      expect(again.logs.append(chunk(39, line(39, 1000)))).toBe(false);
      expect(again.logs.stepOutputs(1).get("s1")).toBe(whole);
    });
  });

  it("serves every reader from the record, byte for byte what the table would, also after a restart", async () => {
    const jobId = newJobId();
    await runInDurableObject(env.JOB.getByName(jobId), (_i: JobDO, state) => {
      const store = storeOver(state.storage);
      store.commit(newJobState({ jobId, projectId: "p", intent: "check git status", userId: "u", chatId: null }, 1));
      store.logs.append(chunk(-1, "── header ──\n", { stepId: null, stream: "system" }));
      store.logs.appendMany([chunk(0, "é\n"), chunk(1, "two\n")]);
      store.logs.appendMany([chunk(1, "two\n"), chunk(2, "three\n")]); // seq 1 resent
      store.flush();
      for (const logs of [store.logs, storeOver(state.storage).logs]) {
        expect([...logs.chunks()].join("")).toBe("── header ──\né\ntwo\nthree\n");
        expect(logs.tail(2)).toBe("two\nthree");
        expect(logs.search("TWO")).toEqual(["two"]);
        expect(logs.lastSeq(1)).toBe(2);
        expect(logs.totalBytes()).toBe(new TextEncoder().encode("── header ──\né\ntwo\nthree\n").length);
        const first = logs.after(null, 1);
        expect(first.next).toEqual({ attempt: 1, seq: -1 });
        expect(logs.after(first.next)).toEqual({ chunks: ["é\ntwo\n", "three\n"], next: { attempt: 1, seq: 2 } });
        expect(logs.stepOutputs(1)).toEqual(new Map([["s1", "é\ntwo\nthree\n"]]));
      }
      expect(hasTable(state.storage.sql)).toBe(false);
    });
  });

  it("redacts a secret split over frames on the record, and over the move to the table", async () => {
    await runInDurableObject(env.JOB.getByName(newJobId()), (_i: JobDO, state) => {
      const sql = state.storage.sql;
      let rows: LogRow[] | undefined | "not written" = "not written";
      const redactor = new Redactor([{ name: "API_TOKEN", value: "test-api-token" }]);
      const log = new LogBuffer(sql, redactor, { rows: [], persist: () => (rows = log.rowsForRecord()) });
      log.appendMany([chunk(0, "x test-"), chunk(1, "api-"), chunk(2, "token y\nz test-ap")]);
      log.appendMany([chunk(3, "i-token w\n")]);
      expect(hasTable(sql)).toBe(false);
      expect([...log.chunks()].join("")).toBe("x [redacted API_TOKEN] y\nz [redacted API_TOKEN] w\n");
      // A secret whose start is on the record and whose end comes with the frame that moves it.
      const filler = "f".repeat(INLINE_MAX_BYTES);
      log.appendMany([chunk(4, "end test-api")]);
      log.appendMany([chunk(5, "-token\n"), chunk(6, filler)]);
      expect(hasTable(sql)).toBe(true);
      expect(rows).toBeUndefined(); // the record was rewritten without the log
      const whole = `x [redacted API_TOKEN] y\nz [redacted API_TOKEN] w\nend [redacted API_TOKEN]\n${filler}`;
      expect([...log.chunks()].join("")).toBe(whole);
      expect([...new LogBuffer(sql).chunks()].join("")).toBe(whole);
    });
  });
});
