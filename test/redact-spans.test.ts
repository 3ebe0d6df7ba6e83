// The Redactor finds secrets with one scan of the text per anchor (a secret found through a
// shorter one inside it: a bot token through its secret half), not one per secret. What it finds
// must be what one scan per secret finds: the reference below is the rule written plainly (each
// secret, longest first, every occurrence in order, kept unless it overlaps one kept before),
// checked against random secrets that contain, repeat and overlap one another.
import { describe, expect, it } from "vitest";
import { Redactor, type Secret, type Span } from "../src/lib/redact.ts";

function reference(secrets: Secret[], text: string): Span[] {
  const sorted = [...secrets].sort((a, b) => b.value.length - a.value.length);
  const found: Span[] = [];
  for (const s of sorted) {
    for (let i = text.indexOf(s.value); i >= 0; i = text.indexOf(s.value, i + 1)) {
      const end = i + s.value.length;
      if (!found.some((f) => i < f.end && end > f.start)) found.push({ start: i, end, name: s.name });
    }
  }
  return found.sort((a, b) => a.start - b.start);
}

/** A small seeded generator (xorshift), so a failure can be replayed. */
function rng(seed: number) {
  let x = seed || 1;
  return (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

describe("Redactor.spans", () => {
  it("finds what one scan per secret finds, for secrets inside, equal to and overlapping each other", () => {
    const next = rng(17);
    const word = (len: number) => Array.from({ length: len }, () => "ab:"[next(3)]).join("");
    for (let n = 0; n < 3000; n++) {
      const secrets: Secret[] = [];
      for (let k = 0, count = 1 + next(4); k < count; k++) {
        const inside = secrets[next(secrets.length + 1)];
        // Some secrets hold an earlier one (as a bot token holds its half), some repeat it.
        const value = inside && next(2) === 0 ? `${word(next(3))}${inside.value}${word(next(3))}` : word(1 + next(5));
        secrets.push({ name: `S${k}`, value });
      }
      const text = Array.from(
        { length: 1 + next(4) },
        () => word(next(12)) + (secrets[next(secrets.length)]?.value ?? ""),
      ).join("");
      const redactor = new Redactor(secrets);
      expect(redactor.spans(text), JSON.stringify({ secrets, text })).toEqual(reference(secrets, text));
    }
  });

  it("redacts a whole bot token as the token and its secret half alone as the half", () => {
    const r = new Redactor([
      { name: "TELEGRAM_BOT_TOKEN", value: "123456:ABCDEFGH-secret" },
      { name: "TELEGRAM_BOT_HALF", value: "ABCDEFGH-secret" },
    ]);
    expect(r.redact("t=123456:ABCDEFGH-secret h=ABCDEFGH-secret")).toBe(
      "t=[redacted TELEGRAM_BOT_TOKEN] h=[redacted TELEGRAM_BOT_HALF]",
    );
  });
});
