// The agent's log lines: a timestamp and a level on every line, text or one JSON object per line,
// and the agent token redacted whatever the message or its fields quote.
import { describe, expect, it } from "vitest";
import { createLogger, formatLogLine } from "../src/logger.ts";
import { Redactor } from "../src/secrets.ts";

const TOKEN = "skya_0123456789abcdef0123456789abcdef";
const AT = new Date("2026-11-25T15:42:10.123Z");

function capture(format: "text" | "json") {
  const lines: string[] = [];
  const logger = createLogger({ format, redactor: new Redactor([TOKEN]), write: (l) => lines.push(l), now: () => AT });
  return { logger, lines };
}

describe("agent log lines", () => {
  it("text lines start with the ISO time and the level, one line per event", () => {
    const { logger, lines } = capture("text");
    logger.info("connected to http://x");
    logger.warn("two\nlines", { jobId: "job_1", note: "has space" });
    expect(lines).toEqual([
      "2026-11-25T15:42:10.123Z INFO  connected to http://x\n",
      '2026-11-25T15:42:10.123Z WARN  two\\nlines jobId=job_1 note="has space"\n',
    ]);
  });

  it("json lines are one object each with time, level, msg and fields", () => {
    const { logger, lines } = capture("json");
    logger.error("job crashed", { jobId: "job_1", attempt: 2 });
    logger.info("plain");
    expect(lines.every((l) => l.endsWith("\n") && !l.slice(0, -1).includes("\n"))).toBe(true);
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      { time: AT.toISOString(), level: "error", msg: "job crashed", fields: { jobId: "job_1", attempt: 2 } },
      { time: AT.toISOString(), level: "info", msg: "plain" },
    ]);
  });

  it("never prints the token, in the message or in a field, in either format", () => {
    for (const format of ["text", "json"] as const) {
      const { logger, lines } = capture(format);
      logger.warn(`server said Bearer ${TOKEN}`, { header: `Authorization: Bearer ${TOKEN}` });
      expect(lines.join("")).not.toContain(TOKEN);
      expect(lines.join("")).toContain("[redacted]");
    }
  });

  it("formats a line purely from its inputs", () => {
    expect(formatLogLine("text", AT, "debug", "x", { a: 1, b: undefined, c: null })).toBe(
      "2026-11-25T15:42:10.123Z DEBUG x a=1 c=null",
    );
  });
});
