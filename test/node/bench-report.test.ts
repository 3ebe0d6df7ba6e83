// The bench's table (bench/lib/report.ts): a part the run skipped reads "not run" in every row of
// it, a figure a part could not measure reads "unknown", and no row shows NaN or Infinity.
import { describe, expect, it } from "vitest";
import { type Result, renderTable } from "../../bench/lib/report.ts";

const base: Result = {
  startedAt: "2026-11-25T00:00:00.000Z",
  machine: { cpu: "cpu", cores: 2, memoryGiB: 1, node: "v22", kernel: "Linux", wrangler: "4" },
  agents: 4,
  direct: { latency: { p50Ms: 3.3, p99Ms: 9.1, n: 30 }, spawnsPerSecond: 400, loops: 4 },
  readOnlyJob: null,
  pickupQueuedToRunning: null,
  throughput: null,
  logStreaming: null,
  opsPerReadOnlyJob: null,
  chatLoad: {
    updates: 400,
    users: 8,
    alone: { p50Ms: 14, p99Ms: 20, n: 5 },
    webhook: { p50Ms: 98, p99Ms: 165, n: 400 },
    errors: 0,
    refusedBotApiCalls: 0,
    repliesInOrder: true,
  },
};

const row = (table: string, startsWith: string) => table.split("\n").find((l) => l.startsWith(`| ${startsWith}`));

describe("bench table", () => {
  it("says 'not run' for every figure of a skipped part, and shows the parts that ran", () => {
    const table = renderTable(base);
    for (const measure of [
      "READ_ONLY job submit",
      "READ_ONLY job submit → the client",
      "overhead over",
      "workerd CPU per READ_ONLY",
      "pickup",
      "throughput:",
      "workerd CPU per throughput",
      "exactly once",
      "log streaming",
      "agent peak RSS",
      "billable operations",
    ]) {
      expect(row(table, measure), measure).toMatch(/\| not run \|$/);
    }
    expect(row(table, "chat: 400 updates")).toMatch(/\| 98 \/ 165 ms \|$/);
    expect(row(table, "direct: `git status`")).toMatch(/\| 3.3 \/ 9.1 ms \|$/);
    expect(table).not.toMatch(/NaN|Infinity/);
    expect(table).toContain(
      "Parts not run in this run (their count was 0): READ_ONLY latency, throughput, log streaming",
    );
  });

  it("says 'unknown' for a figure a part that ran could not measure", () => {
    const table = renderTable({
      ...base,
      chatLoad: null,
      readOnlyJob: {
        p50Ms: 40,
        p99Ms: 60,
        n: 50,
        overheadP50Ms: 36.7,
        overheadP99Ms: 50.9,
        workerdCpuMsPerJob: null,
      },
      pickupQueuedToRunning: { p50Ms: Number.NaN, p99Ms: Number.NaN, n: 0 },
      logStreaming: { bytes: 1024 * 1024, mbPerSecond: 40, byteExact: true, agentPeakRssMb: Number.NaN },
    });
    expect(row(table, "workerd CPU per READ_ONLY")).toMatch(/\| unknown \|$/);
    expect(row(table, "pickup")).toMatch(/\| unknown \/ unknown ms \|$/);
    expect(row(table, "agent peak RSS")).toMatch(/\| unknown \|$/);
    expect(row(table, "overhead over")).toMatch(/\| 36.7 \/ 50.9 ms \|$/);
    // A result from before the client's wait was timed.
    expect(row(table, "READ_ONLY job submit → the client")).toMatch(/\| unknown \|$/);
    expect(row(table, "chat: one update alone")).toMatch(/\| not run \|$/);
    expect(table).not.toMatch(/NaN|Infinity/);
  });
});
