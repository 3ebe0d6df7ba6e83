// The log of a short job in few rows (issue 18, cost per job): an agent batch's consecutive log
// frames are one row, resent frames are stored once, a secret split over frames or rows is still
// redacted, and while the object has seen its whole log it is read from memory (the archive, the
// tails), from the table only after a restart — the same bytes either way.
import { describe, expect, it } from "vitest";
import { LogBuffer, type LogChunkInput } from "../src/jobs/log-buffer.ts";
import { Redactor } from "../src/lib/redact.ts";
import { countingSql, inObject } from "./helpers/log-sql.ts";

const chunk = (seq: number, data: string, more: Partial<LogChunkInput> = {}): LogChunkInput => ({
  attempt: 1,
  seq,
  stepId: "s1",
  stream: "stdout",
  data,
  ...more,
});

/** The object's SQL, with the statements that read the log's rows counted. */
const readsOf = (sql: SqlStorage) =>
  countingSql(sql, (q) => /FROM log_chunks/.test(q) && /SELECT (attempt, seq, )?data/.test(q));

const rowCount = (sql: SqlStorage) => sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM log_chunks").one().n;

describe("a job's log rows", () => {
  it("splits a long stream's batch into rows of bounded size, every byte kept in order", async () => {
    await inObject("log-rows-bounded", (sql) => {
      const log = new LogBuffer(sql);
      // 16 frames of 64 KiB: one batch, but too much text for one row.
      const frames = Array.from({ length: 16 }, (_, i) => chunk(i, String.fromCharCode(97 + i).repeat(64 * 1024)));
      log.appendMany(frames);
      const rows = rowCount(sql);
      expect(rows).toBeGreaterThan(1);
      expect(rows).toBeLessThan(16);
      const biggest = sql.exec<{ n: number }>("SELECT MAX(LENGTH(data)) AS n FROM log_chunks").one().n;
      expect(biggest).toBeLessThanOrEqual(128 * 1024);
      expect([...log.chunks()].join("")).toBe(frames.map((f) => f.data).join(""));
    });
  });

  it("stores a batch's consecutive frames as one row, and resent frames once", async () => {
    await inObject("log-rows-batch", (sql) => {
      const log = new LogBuffer(sql);
      log.appendMany([chunk(0, "a\n"), chunk(1, "b\n"), chunk(2, "c"), chunk(3, "d\n")]);
      expect(rowCount(sql)).toBe(1);
      // The same frames again, and a batch overlapping them: only seqs 4 and 5 are new.
      log.appendMany([chunk(0, "a\n"), chunk(1, "b\n"), chunk(2, "c"), chunk(3, "d\n")]);
      log.appendMany([chunk(2, "c"), chunk(3, "d\n"), chunk(4, "e\n"), chunk(5, "f\n")]);
      expect(log.append(chunk(1, "b\n"))).toBe(false);
      expect(log.append(chunk(5, "f\n"))).toBe(false);
      expect(rowCount(sql)).toBe(2);
      expect([...log.chunks()].join("")).toBe("a\nb\ncd\ne\nf\n");
      // A gap, another stream or another step starts a row of its own.
      log.appendMany([chunk(7, "h\n"), chunk(8, "i\n", { stream: "stderr" }), chunk(9, "j\n", { stepId: "s2" })]);
      expect(rowCount(sql)).toBe(5);
      log.append(chunk(6, "g\n"));
      expect([...log.chunks()].join("")).toBe("a\nb\ncd\ne\nf\ng\nh\ni\nj\n");
      expect(log.stepOutputs(1).get("s1")).toBe("a\nb\ncd\ne\nf\ng\nh\ni\n");
      expect(log.lastSeq(1)).toBe(9);
      // The live stream's positions step over whole rows, nothing twice.
      const first = log.after(null, 1);
      const rest = log.after(first.next);
      expect(first.chunks.join("") + rest.chunks.join("")).toBe("a\nb\ncd\ne\nf\ng\nh\ni\nj\n");
    });
  });

  it("reads each step's start for its answer without pulling the rest of a long log out of the table", async () => {
    await inObject("log-rows-step-start", (sql) => {
      // 2.5 MB of s1 in multi-byte text (13 UTF-8 bytes per 8 UTF-16 units), then a short s2.
      const unit = "é€😀abc\n";
      const frames = Array.from({ length: 40 }, (_, i) => chunk(i, `${i}:${unit.repeat(8 * 1024)}`));
      const log = new LogBuffer(sql);
      for (let i = 0; i < frames.length; i += 8) log.appendMany(frames.slice(i, i + 8));
      log.appendMany([chunk(40, "two\n", { stepId: "s2" }), chunk(41, "lines\n", { stepId: "s2" })]);
      const whole = frames.map((f) => f.data).join("");
      const want = new Map([
        ["s1", whole.slice(0, 512 * 1024)],
        ["s2", "two\nlines\n"],
      ]);
      // The characters of log text each statement hands back (a restarted object reads the table).
      let handed = 0;
      const counting = new Proxy(sql, {
        get(target, prop) {
          if (prop !== "exec") return Reflect.get(target, prop);
          return function* (query: string, ...args: SqlStorageValue[]) {
            for (const row of target.exec(query, ...args)) {
              if (typeof row.data === "string") handed += row.data.length;
              yield row;
            }
          };
        },
      });
      expect(log.stepOutputs(1)).toEqual(want);
      expect(new LogBuffer(counting).stepOutputs(1)).toEqual(want);
      expect(handed).toBeGreaterThanOrEqual(512 * 1024);
      expect(handed).toBeLessThan(whole.length / 2);
    });
  });

  it("redacts a secret split over the frames of one row and over two rows", async () => {
    await inObject("log-rows-secret", (sql) => {
      const log = new LogBuffer(sql, new Redactor([{ name: "API_TOKEN", value: "test-api-token" }]));
      log.appendMany([chunk(0, "x test-"), chunk(1, "api-"), chunk(2, "token y\nz test-ap")]);
      log.appendMany([chunk(3, "i-token w\n"), chunk(4, "done\n")]);
      const whole = [...log.chunks()].join("");
      expect(whole).toBe("x [redacted API_TOKEN] y\nz [redacted API_TOKEN] w\ndone\n");
      // The table holds the same (what a restarted object reads).
      expect([...new LogBuffer(sql).chunks()].join("")).toBe(whole);
    });
  });

  it("reads the archive and tails from memory, and the same bytes from the table after a restart", async () => {
    await inObject("log-rows-memory", (sql) => {
      const counted = readsOf(sql);
      const log = new LogBuffer(counted.sql);
      log.append(chunk(-1, "── header ──\n", { stepId: null, stream: "system" }));
      log.appendMany([chunk(0, "é\n"), chunk(1, "two\n")]);
      log.appendMany([chunk(2, "three\n")]);
      const text = [...log.chunks()].join("");
      expect(log.tail(2)).toBe("two\nthree");
      expect(log.search("TWO")).toEqual(["two"]);
      expect(counted.reads).toEqual([]);
      // A new instance (a restart) has not seen the rows: it reads them, byte for byte the same.
      const again = readsOf(sql);
      const restarted = new LogBuffer(again.sql);
      expect([...restarted.chunks()].join("")).toBe(text);
      expect(restarted.tail(2)).toBe("two\nthree");
      expect(again.reads.length).toBeGreaterThan(0);
      expect(text).toBe("── header ──\né\ntwo\nthree\n");
    });
  });

  it("adds the first_seq column to a table from before combined rows, keeping its rows", async () => {
    await inObject("log-rows-old-table", (sql) => {
      sql.exec(`CREATE TABLE log_chunks (
        attempt INTEGER NOT NULL, seq INTEGER NOT NULL, step_id TEXT, stream TEXT NOT NULL,
        data TEXT NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY (attempt, seq))`);
      sql.exec("INSERT INTO log_chunks VALUES (1, 0, 's1', 'stdout', 'old\n', 4)");
      const log = new LogBuffer(sql);
      expect(log.append(chunk(0, "old\n"))).toBe(false);
      log.appendMany([chunk(0, "old\n"), chunk(1, "new "), chunk(2, "rows\n")]);
      expect([...log.chunks()].join("")).toBe("old\nnew rows\n");
      expect(rowCount(sql)).toBe(2);
    });
  });

  it("creates no table for a job that logs nothing", async () => {
    const tables = await inObject("log-rows-none", (sql) => {
      const log = new LogBuffer(sql);
      expect(log.tail(10)).toBe("");
      expect([...log.chunks()]).toEqual([]);
      expect(log.after(null)).toEqual({ chunks: [], next: null });
      return sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE name = 'log_chunks'").toArray();
    });
    expect(tables).toEqual([]);
  });
});
