// The CI's count: reads vitest's JSON report and the exit codes of the other steps, and prints
// one line per failure it found, then "N passed, N failed". Plain JavaScript so any Node runs it.
//
// Vitest's own totals undercount: a file that fails to import, or whose beforeAll throws, has
// status "failed" but no failed test (its tests are "skipped" or absent), so such files are
// counted here from `testResults`. A project whose glob matched (almost) nothing fails too.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

/** Tests each vitest project had when this was last raised (680 worker, 234 agent, 88 e2e on 2026-11-26, session 9), less a margin: fewer means lost tests. */
export const MINIMUM_TESTS = { worker: 670, agent: 228, e2e: 86 };

/** Which vitest project a test file belongs to (the report does not say). */
export function projectOf(file) {
  const path = file.replaceAll("\\", "/");
  if (path.includes("/test/e2e/")) return "e2e";
  if (path.includes("/agent/test/") || path.includes("/test/node/")) return "agent";
  return "worker";
}

/**
 * @param {unknown} report vitest's JSON report (or undefined when it was not written)
 * @param {{ steps?: Record<string, number>, minimums?: Record<string, number> }} opts
 *   steps: exit codes of the other CI steps by name (lint, typecheck, vitest)
 * @returns {{ passed: number, failed: number, lines: string[] }}
 */
export function count(report, opts = {}) {
  const minimums = opts.minimums ?? MINIMUM_TESTS;
  const lines = [];
  let passed = 0;
  let failed = 0;
  for (const [name, code] of Object.entries(opts.steps ?? {})) {
    if (name === "vitest" || code === 0) continue;
    lines.push(`${name}: failed`);
    failed += 1;
  }
  const results = report && typeof report === "object" ? report.testResults : undefined;
  if (!Array.isArray(results)) {
    lines.push("vitest: no readable JSON report");
    return { passed, failed: failed + 1, lines };
  }
  const perProject = Object.fromEntries(Object.keys(minimums).map((p) => [p, 0]));
  for (const file of results) {
    const name = String(file?.name ?? "?");
    const tests = Array.isArray(file?.assertionResults) ? file.assertionResults : [];
    const project = projectOf(name);
    perProject[project] = (perProject[project] ?? 0) + tests.length;
    let fileFailed = 0;
    let skipped = 0;
    for (const t of tests) {
      if (t?.status === "passed") passed += 1;
      else if (t?.status === "failed") {
        fileFailed += 1;
        lines.push(`failed: ${name} > ${t.fullName ?? t.title ?? "?"}`);
      } else skipped += 1;
    }
    if (file?.status === "failed") {
      // Tests skipped in a failed file were skipped by a failed hook (the project uses no .skip).
      if (skipped > 0) lines.push(`failed: ${name}: ${skipped} test(s) not run (a hook failed)`);
      else if (fileFailed === 0) lines.push(`failed: ${name}: ${firstLine(file.message) || "the file failed"}`);
      fileFailed += skipped;
      if (fileFailed === 0) fileFailed = 1;
    }
    failed += fileFailed;
  }
  for (const [project, minimum] of Object.entries(minimums)) {
    const n = perProject[project] ?? 0;
    if (n < minimum) {
      lines.push(`${project}: only ${n} tests ran, expected at least ${minimum}`);
      failed += 1;
    }
  }
  // Vitest exited non-zero but nothing above explains it (e.g. an unhandled error after the run).
  if ((opts.steps?.vitest ?? 0) !== 0 && failed === 0) {
    lines.push("vitest: failed (unhandled error or crash outside any test)");
    failed += 1;
  }
  if (report.numFailedTestSuites > 0 && failed === 0) {
    lines.push(`vitest: ${report.numFailedTestSuites} failed suite(s)`);
    failed += report.numFailedTestSuites;
  }
  return { passed, failed, lines };
}

function firstLine(message) {
  return typeof message === "string" ? (message.split("\n")[0] ?? "").slice(0, 200) : "";
}

// As a script: node .ci/count.mjs <report.json> <step>=<exit code>... (lint, typecheck, types-fresh, cycles, vitest)
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, ...rest] = process.argv.slice(2);
  const steps = Object.fromEntries(
    rest.map((arg) => {
      const [k, v] = arg.split("=");
      return [k, Number(v)];
    }),
  );
  let report;
  try {
    report = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    report = undefined;
  }
  const { passed, failed, lines } = count(report, { steps });
  for (const line of lines) console.log(line);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}
