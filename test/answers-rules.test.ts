// The rule answer: failing test names as each runner prints them, files changed, exit codes, and
// "the output does not say" rather than a guess.
import { describe, expect, it } from "vitest";
import { failingTests } from "../src/answers/failures.ts";
import { type AnswerStep, ruleAnswer } from "../src/answers/rules.ts";

const OUTPUTS: Record<string, [string, string[]]> = {
  "node --test (TAP, suites left out)": [
    `TAP version 13
# Subtest: adds numbers
ok 1 - adds numbers
# Subtest: subtracts numbers
not ok 2 - subtracts numbers
  ---
  duration_ms: 7.7
  type: 'test'
  failureType: 'testCodeFailure'
  ...
# Subtest: suite x
    # Subtest: inner fails
    not ok 1 - inner fails
      ---
      type: 'test'
      ...
    1..1
not ok 3 - suite x
  ---
  type: 'suite'
  failureType: 'subtestsFailed'
  ...
not ok 4 - later # TODO not written yet
1..4`,
    ["subtracts numbers", "inner fails"],
  ],
  "node --test (spec)": [
    "✔ adds numbers (0.5ms)\n✖ subtracts numbers (1.2ms)\n\u001b[31m✖ failing tests:\u001b[39m\n\n✖ subtracts numbers (1.2ms)\n",
    ["subtracts numbers"],
  ],
  vitest: [
    " ✓ test/a.test.ts > math > adds 1ms\n × test/a.test.ts > math > divides 3ms\n FAIL  test/a.test.ts > math > divides\nAssertionError: expected 1 to be 2",
    ["test/a.test.ts > math > divides"],
  ],
  jest: [
    "FAIL src/sum.test.js\n  sum\n    ✓ adds (2 ms)\n    ✕ multiplies (3 ms)\n\n  ● sum › multiplies\n\n    expect(received).toBe(expected)",
    ["multiplies", "sum › multiplies"],
  ],
  pytest: [
    "tests/test_math.py .F.\n=== short test summary info ===\nFAILED tests/test_math.py::test_div - ZeroDivisionError: division by zero\n=== 1 failed, 2 passed in 0.02s ===",
    ["tests/test_math.py::test_div"],
  ],
  "go test": [
    "=== RUN   TestAdd\n--- PASS: TestAdd (0.00s)\n=== RUN   TestDiv\n    math_test.go:12: got 1 want 2\n--- FAIL: TestDiv (0.00s)\nFAIL\nFAIL\texample.com/m\t0.002s",
    ["TestDiv"],
  ],
  "cargo test": [
    "running 2 tests\ntest tests::adds ... ok\ntest tests::divides ... FAILED\n\nfailures:\n\n---- tests::divides stdout ----\n",
    ["tests::divides"],
  ],
  "passing output": ["TAP version 13\nok 1 - adds\n1..1\n# pass 1\n# fail 0", []],
};

const step = (over: Partial<AnswerStep>): AnswerStep => ({
  stepId: "s1",
  action: "run_tests",
  state: "succeeded",
  exitCode: 0,
  error: null,
  output: "",
  ...over,
});
const answer = (steps: AnswerStep[], status: "SUCCEEDED" | "FAILED" | "CANCELLED" = "SUCCEEDED", error = null) =>
  ruleAnswer({ intent: "x", question: null, status, error, steps });

describe("failing test names", () => {
  it.each(Object.entries(OUTPUTS))("%s", (_, [output, names]) => {
    expect(failingTests(output)).toEqual(names);
  });
});

describe("rule answer", () => {
  it("names the failing tests with the exit code", () => {
    const [tap] = OUTPUTS["node --test (TAP, suites left out)"] ?? [""];
    expect(answer([step({ state: "failed", exitCode: 1, output: tap })], "FAILED")).toBe(
      "2 tests failed (exit 1): subtracts numbers, inner fails.",
    );
  });

  it("says when the output does not name the failures, and when the tests passed", () => {
    expect(answer([step({ state: "failed", exitCode: 2, output: "Segmentation fault" })], "FAILED")).toBe(
      "The tests failed (exit 2); the output does not name the failing tests (see /logs).",
    );
    expect(answer([step({})])).toBe("The tests passed.");
  });

  it("lists changed and untracked files from git status, and a clean tree", () => {
    const status = `On branch main
Changes not staged for commit:
  (use "git add <file>..." to update what will be committed)
\tmodified:   src/app.ts
\tdeleted:    old.txt

Untracked files:
  (use "git add <file>..." to include in what will be committed)
\tnotes.md
`;
    expect(answer([step({ action: "git_status", output: status })])).toBe(
      "Files changed: src/app.ts, old.txt; untracked: notes.md.",
    );
    expect(
      answer([step({ action: "git_status", output: "On branch main\nnothing to commit, working tree clean\n" })]),
    ).toBe("The working tree is clean.");
  });

  it("reports each step in order: a commit, a failed build with its error, a cancelled job", () => {
    expect(
      answer(
        [
          step({ action: "git_commit", output: "[main 1a2b3c4] fix typo\n 1 file changed" }),
          step({ stepId: "s2", action: "build_project", state: "failed", exitCode: 2, error: "tsc found 3 errors" }),
          step({ stepId: "s3", action: "git_push", state: "skipped" }),
        ],
        "FAILED",
      ),
    ).toBe("Committed 1a2b3c4 on main. build_project failed (exit 2): tsc found 3 errors.");
    expect(ruleAnswer({ intent: "x", question: null, status: "CANCELLED", error: "denied", steps: [] })).toBe(
      "The job was cancelled: denied.",
    );
  });
});
