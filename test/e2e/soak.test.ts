// The soak (bench/soak.ts) in small: 60 jobs on wrangler dev with two real agents while they are
// SIGKILLed and restarted, cut off by a TCP proxy (reset or black hole), SIGSTOPped, and the
// Worker restarted. No job may be lost, stuck, run twice or reported against what happened; a job
// FAILED as "outcome unknown" is true either way and only printed.
import { describe, expect, it } from "vitest";
import { runSoak, SMALL, summary } from "../../bench/soak.ts";

describe("soak", () => {
  it("60 jobs under agent kills, network cuts, stops and a Worker restart: none lost, stuck, duplicated or misreported", async () => {
    const seed = Math.floor(Math.random() * 2 ** 31);
    const result = await runSoak({ ...SMALL, seed, log: () => undefined });
    const report = `seed ${seed}\n${summary(result)}`;
    expect(result.submitted, report).toBe(60);
    // Every kind of fault really happened.
    const kinds = result.faults.map((f) => f.kind);
    for (const kind of ["kill", "cut", "stop", "worker"]) expect(kinds, report).toContain(kind);
    expect(result.lost, report).toEqual([]);
    expect(result.stuck, report).toEqual([]);
    expect(result.duplicated, report).toEqual([]);
    expect(result.misreported, report).toEqual([]);
    expect(result.strayTraceLines, report).toBe(0);
    // FAILED "outcome unknown" (said so) is true with or without a trace: counted, not asserted.
    console.log(
      `soak: unknown (said so) ${result.unknown.withTrace.length} with a trace, ${result.unknown.withoutTrace.length} without (seed ${seed})`,
    );
  }, 330_000);
});
