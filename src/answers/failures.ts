// Failing test names, read from what the common runners print: node --test (TAP and spec),
// vitest and jest, pytest, go test and cargo test. Only names a runner marked as failed are
// returned; when nothing matches, the caller says it does not know rather than guess.

const MAX_NAMES = 20;

type Reader = (lines: string[]) => string[];

/** node --test's TAP: "not ok 2 - name", suites (their YAML says type: 'suite') left out. */
const tap: Reader = (lines) => {
  const out: string[] = [];
  for (const [i, line] of lines.entries()) {
    const m = /^\s*not ok \d+ - (.+?)(?:\s+#\s*(?:TODO|SKIP)\b.*)?$/.exec(line);
    if (!m?.[1] || /#\s*(?:TODO|SKIP)\b/i.test(line)) continue;
    const yaml = lines.slice(i + 1, i + 12);
    const end = yaml.findIndex((l) => /^\s*\.\.\.\s*$/.test(l));
    const block = end >= 0 ? yaml.slice(0, end) : yaml;
    if (block.some((l) => /type: 'suite'|failureType: 'subtestsFailed'/.test(l))) continue;
    out.push(m[1]);
  }
  return out;
};

/** node --test's spec reporter and vitest: "✖ name (1.2ms)", "× name 3ms", "✕ name". */
const marks: Reader = (lines) =>
  lines.flatMap((line) => {
    const m = /^\s*[✖×✕]\s+(.+?)(?:\s+\(?\d+(?:\.\d+)?\s*m?s\)?)?\s*$/.exec(line);
    return m?.[1] && !/^failing tests:?$/i.test(m[1]) ? [m[1]] : [];
  });

/** vitest/jest file summaries: "FAIL  test/x.test.ts > suite > name", jest's "● suite › name". */
const vitestJest: Reader = (lines) =>
  lines.flatMap((line) => {
    const v = /^\s*FAIL\s+(\S+\s+>\s+.+?)\s*$/.exec(line);
    if (v?.[1]) return [v[1]];
    const j = /^\s*●\s+(.+›.+?)\s*$/.exec(line);
    return j?.[1] ? [j[1]] : [];
  });

/** pytest: "FAILED tests/test_x.py::test_name - AssertionError". */
const pytest: Reader = (lines) =>
  lines.flatMap((line) => {
    const m = /^\s*FAILED\s+(\S+::\S+)/.exec(line);
    return m?.[1] ? [m[1]] : [];
  });

/** go test: "--- FAIL: TestName (0.00s)". */
const goTest: Reader = (lines) =>
  lines.flatMap((line) => {
    const m = /^\s*--- FAIL: (\S+)/.exec(line);
    return m?.[1] ? [m[1]] : [];
  });

/** cargo test: "test tests::name ... FAILED". */
const cargo: Reader = (lines) =>
  lines.flatMap((line) => {
    const m = /^\s*test (\S+) \.\.\. FAILED\s*$/.exec(line);
    return m?.[1] ? [m[1]] : [];
  });

const READERS: Reader[] = [tap, marks, vitestJest, pytest, goTest, cargo];

/** The failing tests the output names, in order, each once (at most 20). */
export function failingTests(output: string): string[] {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: colour codes are what is stripped
  const lines = output.replace(/\u001b\[[0-9;]*m/g, "").split(/\r?\n/);
  const seen = new Set<string>();
  for (const reader of READERS) {
    for (const name of reader(lines)) {
      const clean = name.trim().slice(0, 200);
      if (clean) seen.add(clean);
    }
  }
  return [...seen].slice(0, MAX_NAMES);
}
