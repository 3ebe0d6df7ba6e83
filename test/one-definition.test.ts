// Rules that used to be spelled in several modules now have one definition each; these tests pin
// the definition to what it must agree with, so a second copy cannot silently win.
import { describe, expect, it } from "vitest";
import {
  CreateTaskRequestSchema,
  escapeHtml,
  intentProblem,
  isTerminal,
  JobStatusSchema,
  MAX_INTENT_CHARS,
  TERMINAL_STATUSES,
} from "../protocol/index.ts";
import { esc } from "../src/bot/format.ts";
import { allowedTransitions } from "../src/core/job-machine.ts";

describe("terminal statuses", () => {
  it("are exactly the states the job machine never leaves", () => {
    const leavable = new Set(
      allowedTransitions()
        .filter((t) => t.to !== t.from)
        .map((t) => t.from),
    );
    const final = JobStatusSchema.options.filter((s) => !leavable.has(s));
    expect([...TERMINAL_STATUSES].sort()).toEqual(final.sort());
    for (const s of JobStatusSchema.options) expect(isTerminal(s)).toBe(final.includes(s));
    // Statuses read back from D1 are plain strings: an unknown one is not terminal.
    expect(isTerminal("succeeded")).toBe(false);
  });
});

describe("HTML escaping", () => {
  it("escapes the four characters that can open markup or leave an attribute, and only those", () => {
    expect(escapeHtml(`<b a="x">&amp;'</b>`)).toBe("&lt;b a=&quot;x&quot;&gt;&amp;amp;'&lt;/b&gt;");
  });
  it("is what Telegram messages use, after bidi/zero-width characters are made visible", () => {
    expect(esc('<i>"\u202E"</i>')).toBe("&lt;i&gt;&quot;⟨U+202E⟩&quot;&lt;/i&gt;");
  });
});

describe("the intent rule", () => {
  it("is the same for the API schema and the bot, at the one limit", () => {
    const cases = [
      "check git status",
      "   ",
      "x".repeat(MAX_INTENT_CHARS),
      "x".repeat(MAX_INTENT_CHARS + 1),
      "a\u0000b",
    ];
    for (const intent of cases) {
      const problem = intentProblem(intent.trim());
      const parsed = CreateTaskRequestSchema.safeParse({ intent });
      expect(parsed.success, JSON.stringify(intent.slice(0, 20))).toBe(problem === null);
      if (!parsed.success) expect(parsed.error.issues.map((i) => i.message)).toEqual([problem]);
    }
    expect(intentProblem("x".repeat(MAX_INTENT_CHARS))).toBeNull();
    expect(intentProblem("x".repeat(MAX_INTENT_CHARS + 1))).toMatch(String(MAX_INTENT_CHARS));
  });
});
