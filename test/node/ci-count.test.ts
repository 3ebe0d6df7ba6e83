// The CI's count (.ci/count.mjs) against small vitest JSON reports shaped like the real ones
// (vitest 5: a file that fails to import has no assertionResults; a beforeAll that throws leaves
// its tests "skipped" with no failed test and numFailedTests 0).
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { count, MINIMUM_TESTS, projectOf } from "../../.ci/count.mjs";

const ROOT = resolve(import.meta.dirname, "../..");
const NONE = { worker: 0, agent: 0, e2e: 0 };
const test = (fullName: string, status: string) => ({ fullName, title: fullName, status, failureMessages: [] });
const file = (name: string, status: string, tests: ReturnType<typeof test>[], message = "") => ({
  name: `${ROOT}/${name}`,
  status,
  message,
  assertionResults: tests,
});
const report = (files: ReturnType<typeof file>[], extra: Record<string, unknown> = {}) => ({
  numPassedTests: files.flatMap((f) => f.assertionResults).filter((t) => t.status === "passed").length,
  numFailedTests: files.flatMap((f) => f.assertionResults).filter((t) => t.status === "failed").length,
  numFailedTestSuites: 0,
  testResults: files,
  ...extra,
});

describe("CI count", () => {
  it("counts passed and failed tests", () => {
    const r = report([file("test/a.test.ts", "failed", [test("a one", "passed"), test("a two", "failed")])]);
    expect(count(r, { minimums: NONE })).toEqual({
      passed: 1,
      failed: 1,
      lines: [`failed: ${ROOT}/test/a.test.ts > a two`],
    });
  });

  it("counts a file that failed to import as a failure", () => {
    const r = report(
      [
        file("test/ok.test.ts", "passed", [test("ok", "passed")]),
        file("test/node/broken.test.ts", "failed", [], "Cannot find module './x.ts'\n  at …"),
      ],
      { numFailedTestSuites: 1 },
    );
    expect(count(r, { minimums: NONE })).toEqual({
      passed: 1,
      failed: 1,
      lines: [`failed: ${ROOT}/test/node/broken.test.ts: Cannot find module './x.ts'`],
    });
  });

  it("counts the tests a failed beforeAll skipped as failed", () => {
    const r = report([
      file("test/e2e/x.test.ts", "failed", [test("a x", "skipped"), test("a y", "skipped"), test("b z", "passed")]),
    ]);
    const out = count(r, { minimums: NONE });
    expect(out.passed).toBe(1);
    expect(out.failed).toBe(2);
    expect(out.lines).toEqual([`failed: ${ROOT}/test/e2e/x.test.ts: 2 test(s) not run (a hook failed)`]);
  });

  it("counts a failed afterAll in a file whose tests all passed", () => {
    const r = report([file("test/a.test.ts", "failed", [test("a", "passed")], "afterAll boom")]);
    expect(count(r, { minimums: NONE })).toMatchObject({ passed: 1, failed: 1 });
  });

  it("names failed lint and typecheck steps and counts each", () => {
    const r = report([file("test/a.test.ts", "passed", [test("a", "passed")])]);
    expect(count(r, { minimums: NONE, steps: { lint: 1, typecheck: 2, vitest: 0 } })).toEqual({
      passed: 1,
      failed: 2,
      lines: ["lint: failed", "typecheck: failed"],
    });
  });

  it("counts every step .ci/run runs: each exit code it records is passed to count.mjs", async () => {
    const script = await readFile(join(ROOT, ".ci/run"), "utf8");
    const recorded = [...script.matchAll(/;\s*(\w+)=\$\?/g)].map((m) => m[1]);
    const countLine = script.split("\n").find((l) => l.startsWith("node .ci/count.mjs")) ?? "";
    const passed = [...countLine.matchAll(/"([\w-]+)=\$(\w+)"/g)].map((m) => ({ step: m[1], code: m[2] }));
    expect(passed.map((p) => p.code).sort()).toEqual([...recorded].sort());
    expect(passed.map((p) => p.step)).toEqual(expect.arrayContaining(["lint", "typecheck", "types-fresh", "cycles"]));
    const r = report([file("test/a.test.ts", "passed", [test("a", "passed")])]);
    const steps = Object.fromEntries(passed.map((p) => [p.step, p.step === "vitest" ? 0 : 1]));
    expect(count(r, { minimums: NONE, steps }).lines).toEqual(
      passed.filter((p) => p.step !== "vitest").map((p) => `${p.step}: failed`),
    );
  });

  it("fails a project with fewer tests than its minimum", () => {
    const r = report([
      file("test/a.test.ts", "passed", [test("w", "passed")]),
      file("agent/test/b.test.ts", "passed", [test("a", "passed")]),
      file("test/node/c.test.ts", "passed", [test("n", "passed")]),
    ]);
    expect(count(r, { minimums: { worker: 1, agent: 2, e2e: 1 } })).toEqual({
      passed: 3,
      failed: 1,
      lines: ["e2e: only 0 tests ran, expected at least 1"],
    });
  });

  it("fails without a report, and when vitest failed with nothing else to show", () => {
    expect(count(undefined, { minimums: NONE })).toEqual({
      passed: 0,
      failed: 1,
      lines: ["vitest: no readable JSON report"],
    });
    const r = report([file("test/a.test.ts", "passed", [test("a", "passed")])]);
    expect(count(r, { minimums: NONE, steps: { vitest: 1 } }).failed).toBe(1);
  });

  it("tells the projects apart by path", () => {
    expect(projectOf(`${ROOT}/test/e2e/faults.test.ts`)).toBe("e2e");
    expect(projectOf(`${ROOT}/agent/test/runner.test.ts`)).toBe("agent");
    expect(projectOf(`${ROOT}/test/node/deploy.test.ts`)).toBe("agent");
    expect(projectOf(`${ROOT}/test/api.test.ts`)).toBe("worker");
  });

  it("as a script: prints the failures and the final line, exits non-zero", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ci-count-"));
    try {
      const path = join(dir, "r.json");
      await writeFile(path, JSON.stringify(report([file("test/a.test.ts", "passed", [test("a", "passed")])])));
      const run = promisify(execFile)(process.execPath, [join(ROOT, ".ci/count.mjs"), path, "lint=1", "vitest=0"]);
      const err = (await run.catch((e: unknown) => e)) as { code: number; stdout: string };
      expect(err.code).toBe(1);
      expect(err.stdout.trim().split("\n")).toEqual([
        "lint: failed",
        `worker: only 1 tests ran, expected at least ${MINIMUM_TESTS.worker}`,
        `agent: only 0 tests ran, expected at least ${MINIMUM_TESTS.agent}`,
        `e2e: only 0 tests ran, expected at least ${MINIMUM_TESTS.e2e}`,
        "1 passed, 4 failed",
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
