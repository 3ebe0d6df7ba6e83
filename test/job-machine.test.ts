// The pure state-machine table: every legal transition and every illegal one.
import { describe, expect, it } from "vitest";
import { JobStatusSchema } from "../protocol/index.ts";
import { ALL_EVENTS, allowedTransitions, transition } from "../src/core/job-machine.ts";

const LEGAL: Record<string, string> = {
  "CREATED plan_ready": "PLANNED",
  "CREATED plan_failed": "FAILED",
  "CREATED fail": "FAILED",
  "CREATED cancel": "CANCELLED",
  "PLANNED approve": "QUEUED",
  "PLANNED fail": "FAILED",
  "PLANNED cancel": "CANCELLED",
  "QUEUED start": "RUNNING",
  "QUEUED fail": "FAILED",
  "QUEUED cancel": "CANCELLED",
  "QUEUED waiting": "QUEUED",
  "RUNNING succeed": "SUCCEEDED",
  "RUNNING fail": "FAILED",
  "RUNNING requeue": "QUEUED",
  "RUNNING cancel": "CANCELLED",
  "RUNNING unreachable": "RUNNING",
  "RUNNING reachable": "RUNNING",
};

describe("transition", () => {
  it("allows exactly the designed transitions", () => {
    const table = Object.fromEntries(allowedTransitions().map((t) => [`${t.from} ${t.event}`, t.to]));
    expect(table).toEqual(LEGAL);
  });

  for (const from of JobStatusSchema.options) {
    for (const event of ALL_EVENTS) {
      const key = `${from} ${event}`;
      const expected = LEGAL[key];
      it(`${key} → ${expected ?? "refused"}`, () => {
        const res = transition(from, event);
        if (expected) expect(res).toEqual({ ok: true, value: expected });
        else {
          expect(res.ok).toBe(false);
          expect(!res.ok && res.error).toMatch(
            from === "SUCCEEDED" || from === "FAILED" || from === "CANCELLED" ? /final/ : /cannot/,
          );
        }
      });
    }
  }
});
