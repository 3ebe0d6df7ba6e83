// What people type, read by the rule planner: each phrasing with the exact plan (actions and
// params after the catalog's defaults), the job's question, or the exact refusal. Opposites and
// negations are refused, never inverted into the action they name.
import { describe, expect, it } from "vitest";
import { getAction } from "../protocol/index.ts";
import { RulePlanner } from "../src/planners/rules.ts";

type Expected = { steps: [string, Record<string, unknown>][]; question?: string } | { refused: string };

const planner = new RulePlanner();
const plan = (intent: string) => planner.plan({ jobId: "job_0123456789abcdef", intent, projectId: "default" });

const TABLE: [string, Expected][] = [
  [
    "delete the build folder",
    {
      refused:
        '"delete the build folder": none of my actions deletes anything, so I planned nothing rather than something else',
    },
  ],
  ["list files in src", { steps: [["list_files", { path: "src", maxDepth: 3 }]] }],
  ["push to main", { steps: [["git_push", { remote: "origin", branch: "main" }]] }],
  ["run the tests and tell me which failed", { steps: [["run_tests", { args: [] }]], question: "which failed" }],
  [
    "what changed since yesterday?",
    { steps: [["git_log", { limit: 200, since: "yesterday" }]], question: "what changed since yesterday?" },
  ],
  ["show me the README", { steps: [["read_file", { path: "README.md", maxBytes: 1048576 }]] }],
  ["find TODOs in src", { steps: [["search_code", { pattern: "TODO", path: "src" }]] }],
  ["check git status", { steps: [["git_status", {}]] }],
  ["show the last 5 commits", { steps: [["git_log", { limit: 5 }]] }],
  ["push to origin", { steps: [["git_push", { remote: "origin" }]] }],
  ["push to origin main", { steps: [["git_push", { remote: "origin", branch: "main" }]] }],
  ["push to origin/main", { steps: [["git_push", { remote: "origin", branch: "main" }]] }],
  [
    'commit "fix typo" and push to main',
    {
      steps: [
        ["git_commit", { message: "fix typo", addAll: true }],
        ["git_push", { remote: "origin", branch: "main" }],
      ],
    },
  ],
  ["don't push", { refused: '"don\'t push" says "don\'t"; I only plan what you ask me to do, so leave that part out' }],
  [
    "commit but don't push",
    { refused: '"don\'t push" says "don\'t"; I only plan what you ask me to do, so leave that part out' },
  ],
  ["build the project", { steps: [["build_project", { args: [] }]] }],
  ["list the files in the build folder", { steps: [["list_files", { path: "build", maxDepth: 3 }]] }],
  [
    "undo the last commit",
    {
      refused:
        '"undo the last commit": none of my actions undoes anything, so I planned nothing rather than something else',
    },
  ],
  [
    "force push to main",
    { refused: '"force push to main": I never force-push; a plain push is not what you asked for' },
  ],
  ["run command echo don't stop", { steps: [["run_command", { argv: ["echo", "don't", "stop"] }]] }],
  [
    "create a file notes.txt with do not forget milk",
    { steps: [["write_file", { path: "notes.txt", content: "do not forget milk", overwrite: false }]] },
  ],
  ["search the code for parseIntent in src", { steps: [["search_code", { pattern: "parseIntent", path: "src" }]] }],
  ['grep for "not found" in lib', { steps: [["search_code", { pattern: "not found", path: "lib" }]] }],
  [
    "what changed in the last 3 commits",
    { steps: [["git_log", { limit: 3 }]], question: "what changed in the last 3 commits" },
  ],
  ["are the tests passing?", { steps: [["run_tests", { args: [] }]], question: "are the tests passing?" }],
  ["run the tests with pytest", { steps: [["run_tests", { runner: "pytest", args: [] }]] }],
  ["npm test", { steps: [["run_tests", { runner: "npm", args: [] }]] }],
  ["cargo test", { steps: [["run_tests", { runner: "cargo", args: [] }]] }],
  ["ls src", { steps: [["list_files", { path: "src", maxDepth: 3 }]] }],
  ["what's in src", { steps: [["list_files", { path: "src", maxDepth: 3 }]], question: "what's in src" }],
  [
    "what's in package.json",
    { steps: [["read_file", { path: "package.json", maxBytes: 1048576 }]], question: "what's in package.json" },
  ],
  ["show staged changes", { steps: [["git_diff", { staged: true }]] }],
  ["show the diff of src/app.ts", { steps: [["git_diff", { path: "src/app.ts", staged: false }]] }],
  ["please check git status", { steps: [["git_status", {}]] }],
  ["can you run the tests please", { steps: [["run_tests", { args: [] }]] }],
  ["show me the commits since last week", { steps: [["git_log", { limit: 200, since: "1 week ago" }]] }],
  [
    "what changed since 3 days ago",
    { steps: [["git_log", { limit: 200, since: "3 days ago" }]], question: "what changed since 3 days ago" },
  ],
  [
    "what changed since the dawn of time",
    {
      refused:
        'I don\'t know the time "since the dawn of time"; say yesterday, today, last week, 3 days ago or a date like 2026-01-31',
    },
  ],
  ["lint the code and tell me what is wrong", { steps: [["lint", { args: [] }]], question: "what is wrong" }],
  [
    "install dependencies then run the tests and tell me which tests failed",
    {
      steps: [
        ["install_deps", {}],
        ["run_tests", { args: [] }],
      ],
      question: "which tests failed",
    },
  ],
  ["git status", { steps: [["git_status", {}]] }],
  ["status", { steps: [["git_status", {}]] }],
  ["what's the status?", { steps: [["git_status", {}]], question: "what's the status?" }],
  ["show me the diff", { steps: [["git_diff", { staged: false }]] }],
  ["git diff", { steps: [["git_diff", { staged: false }]] }],
  ["what did I change?", { steps: [["git_diff", { staged: false }]], question: "what did I change?" }],
  ["show the changes in src/index.ts", { steps: [["git_diff", { path: "src/index.ts", staged: false }]] }],
  ["show the last commit", { steps: [["git_log", { limit: 1 }]] }],
  ["show me the last ten commits", { steps: [["git_log", { limit: 10 }]] }],
  ["git log", { steps: [["git_log", { limit: 20 }]] }],
  ["commit history", { steps: [["git_log", { limit: 20 }]] }],
  ["show the commit history", { steps: [["git_log", { limit: 20 }]] }],
  ["recent commits", { steps: [["git_log", { limit: 20 }]] }],
  [
    "what happened since 2026-01-31?",
    { steps: [["git_log", { limit: 200, since: "2026-01-31" }]], question: "what happened since 2026-01-31?" },
  ],
  ["commits since yesterday", { steps: [["git_log", { limit: 200, since: "yesterday" }]] }],
  ["show me the log since 2 weeks ago", { steps: [["git_log", { limit: 200, since: "2 weeks ago" }]] }],
  ["list all files", { steps: [["list_files", { path: ".", maxDepth: 3 }]] }],
  ["list files", { steps: [["list_files", { path: ".", maxDepth: 3 }]] }],
  ["ls", { steps: [["list_files", { path: ".", maxDepth: 3 }]] }],
  ["list files in src/lib", { steps: [["list_files", { path: "src/lib", maxDepth: 3 }]] }],
  ["show files in the docs folder", { steps: [["list_files", { path: "docs", maxDepth: 3 }]] }],
  ["list the contents of test", { steps: [["list_files", { path: "test", maxDepth: 3 }]] }],
  ["ls the src folder", { steps: [["list_files", { path: "src", maxDepth: 3 }]] }],
  ["read the file README.md", { steps: [["read_file", { path: "README.md", maxBytes: 1048576 }]] }],
  ["read package.json", { steps: [["read_file", { path: "package.json", maxBytes: 1048576 }]] }],
  ["open src/app.ts", { steps: [["read_file", { path: "src/app.ts", maxBytes: 1048576 }]] }],
  ["cat tsconfig.json", { steps: [["read_file", { path: "tsconfig.json", maxBytes: 1048576 }]] }],
  ["show me the changelog", { steps: [["read_file", { path: "CHANGELOG.md", maxBytes: 1048576 }]] }],
  ["show the license", { steps: [["read_file", { path: "LICENSE", maxBytes: 1048576 }]] }],
  ["print the README file", { steps: [["read_file", { path: "README.md", maxBytes: 1048576 }]] }],
  ["search the code for TODO", { steps: [["search_code", { pattern: "TODO" }]] }],
  ["search for FIXME in lib", { steps: [["search_code", { pattern: "FIXME", path: "lib" }]] }],
  ["find FIXMEs", { steps: [["search_code", { pattern: "FIXME" }]] }],
  ["find all TODO comments in src", { steps: [["search_code", { pattern: "TODO", path: "src" }]] }],
  ["grep for TODO", { steps: [["search_code", { pattern: "TODO" }]] }],
  ["find usages of createPlanner", { steps: [["search_code", { pattern: "createPlanner" }]] }],
  [
    "where is createPlanner used?",
    { steps: [["search_code", { pattern: "createPlanner" }]], question: "where is createPlanner used?" },
  ],
  ['find "hello world"', { steps: [["search_code", { pattern: "hello world" }]] }],
  ["run all tests", { steps: [["run_tests", { args: [] }]] }],
  ["run the tests", { steps: [["run_tests", { args: [] }]] }],
  ["run tests", { steps: [["run_tests", { args: [] }]] }],
  ["test", { steps: [["run_tests", { args: [] }]] }],
  ["run the unit tests", { steps: [["run_tests", { args: [] }]] }],
  ["run my tests and tell me what failed", { steps: [["run_tests", { args: [] }]], question: "what failed" }],
  ["do the tests pass?", { steps: [["run_tests", { args: [] }]], question: "do the tests pass?" }],
  ["are the tests failing?", { steps: [["run_tests", { args: [] }]], question: "are the tests failing?" }],
  [
    "run the tests and let me know which ones fail",
    { steps: [["run_tests", { args: [] }]], question: "which ones fail" },
  ],
  ["run pytest", { steps: [["run_tests", { runner: "pytest", args: [] }]] }],
  ["go test", { steps: [["run_tests", { runner: "go", args: [] }]] }],
  ["run npm test", { steps: [["run_tests", { runner: "npm", args: [] }]] }],
  ["build", { steps: [["build_project", { args: [] }]] }],
  ["compile", { steps: [["build_project", { args: [] }]] }],
  ["does it build?", { steps: [["build_project", { args: [] }]], question: "does it build?" }],
  ["build it with make", { steps: [["build_project", { runner: "make", args: [] }]] }],
  ["run the build", { steps: [["build_project", { args: [] }]] }],
  ["lint the code", { steps: [["lint", { args: [] }]] }],
  ["lint", { steps: [["lint", { args: [] }]] }],
  ["run the linter", { steps: [["lint", { args: [] }]] }],
  ["install dependencies", { steps: [["install_deps", {}]] }],
  ["install the deps", { steps: [["install_deps", {}]] }],
  ["npm install", { steps: [["install_deps", {}]] }],
  [
    "create a new file test.txt with hello world",
    { steps: [["write_file", { path: "test.txt", content: "hello world", overwrite: false }]] },
  ],
  [
    "write a file hello.md with # Title",
    { steps: [["write_file", { path: "hello.md", content: "# Title", overwrite: false }]] },
  ],
  ["create file empty.txt", { steps: [["write_file", { path: "empty.txt", content: "", overwrite: false }]] }],
  ["commit with message fix typo", { steps: [["git_commit", { message: "fix typo", addAll: true }]] }],
  ["commit", { steps: [["git_commit", { message: "Commit by SKYNET", addAll: true }]] }],
  [
    'commit everything with the message "release notes"',
    { steps: [["git_commit", { message: "release notes", addAll: true }]] },
  ],
  ['commit -m "wip"', { steps: [["git_commit", { message: "wip", addAll: true }]] }],
  ["commit the changes", { steps: [["git_commit", { message: "Commit by SKYNET", addAll: true }]] }],
  ["push", { steps: [["git_push", { remote: "origin" }]] }],
  ["push it", { steps: [["git_push", { remote: "origin" }]] }],
  ["push to upstream", { steps: [["git_push", { remote: "upstream" }]] }],
  ["push my changes to origin", { steps: [["git_push", { remote: "origin" }]] }],
  ["push the branch feature/login", { steps: [["git_push", { remote: "origin", branch: "feature/login" }]] }],
  ["push to main as well", { steps: [["git_push", { remote: "origin", branch: "main" }]] }],
  ["git push", { steps: [["git_push", { remote: "origin" }]] }],
  ["run command npm --version", { steps: [["run_command", { argv: ["npm", "--version"] }]] }],
  ["run `ls -la`", { steps: [["run_command", { argv: ["ls", "-la"] }]] }],
  ["execute command git --version", { steps: [["run_command", { argv: ["git", "--version"] }]] }],
  [
    "check git status, run tests, and build project",
    {
      steps: [
        ["git_status", {}],
        ["run_tests", { args: [] }],
        ["build_project", { args: [] }],
      ],
    },
  ],
  [
    "check git status then run the tests and tell me which failed",
    {
      steps: [
        ["git_status", {}],
        ["run_tests", { args: [] }],
      ],
      question: "which failed",
    },
  ],
  [
    "create a file a.txt with salt and pepper, then commit and push",
    {
      steps: [
        ["write_file", { path: "a.txt", content: "salt and pepper", overwrite: false }],
        ["git_commit", { message: "Commit by SKYNET", addAll: true }],
        ["git_push", { remote: "origin" }],
      ],
    },
  ],
  [
    "remove node_modules",
    {
      refused:
        '"remove node_modules": none of my actions removes anything, so I planned nothing rather than something else',
    },
  ],
  [
    "clean the build",
    {
      refused: '"clean the build": none of my actions cleans anything, so I planned nothing rather than something else',
    },
  ],
  [
    "reset the repo to main",
    {
      refused:
        '"reset the repo to main": none of my actions resets anything, so I planned nothing rather than something else',
    },
  ],
  [
    "revert the last commit",
    {
      refused:
        '"revert the last commit": none of my actions reverts anything, so I planned nothing rather than something else',
    },
  ],
  [
    "uninstall dependencies",
    {
      refused:
        '"uninstall dependencies": none of my actions uninstalls anything, so I planned nothing rather than something else',
    },
  ],
  [
    "pull from main",
    { refused: '"pull from main": none of my actions pulls anything, so I planned nothing rather than something else' },
  ],
  [
    "merge dev into main",
    {
      refused:
        '"merge dev into main": none of my actions merges anything, so I planned nothing rather than something else',
    },
  ],
  [
    "deploy to production",
    {
      refused:
        '"deploy to production": none of my actions deploys anything, so I planned nothing rather than something else',
    },
  ],
  [
    "rename foo.ts to bar.ts",
    {
      refused:
        '"rename foo.ts to bar.ts": none of my actions renames anything, so I planned nothing rather than something else',
    },
  ],
  [
    "fix the failing test",
    {
      refused:
        '"fix the failing test": none of my actions fixes anything, so I planned nothing rather than something else',
    },
  ],
  [
    "don't run the tests",
    { refused: '"don\'t run the tests" says "don\'t"; I only plan what you ask me to do, so leave that part out' },
  ],
  [
    "never push to main",
    { refused: '"never push to main" says "never"; I only plan what you ask me to do, so leave that part out' },
  ],
  [
    "build without running tests",
    {
      refused:
        '"build without running tests" says "without"; I only plan what you ask me to do, so leave that part out',
    },
  ],
  [
    "skip the lint and build",
    { refused: '"skip the lint" says "skip"; I only plan what you ask me to do, so leave that part out' },
  ],
  [
    "run tests but not the build",
    { refused: '"not the build" says "not"; I only plan what you ask me to do, so leave that part out' },
  ],
  [
    "make me a sandwich",
    {
      refused:
        'I could not map "make me a sandwich" to an action I can run. Try phrases like: check git status; show the last 5 commits; run the tests; build the project; create a new file notes.txt with hello; search the code for TODO; run command npm --version.',
    },
  ],
  [
    "check git status and make me a sandwich",
    {
      refused:
        'I understood "check git status" → git_status; I could not map "make me a sandwich" to an action I can run. Try phrases like: check git status; show the last 5 commits; run the tests; build the project; create a new file notes.txt with hello; search the code for TODO; run command npm --version.',
    },
  ],
  [
    "read the file ../../etc/passwd",
    {
      refused:
        "\"read the file ../../etc/passwd\": invalid params for read_file: path: paths may not leave the workspace ('..')",
    },
  ],
  [
    "list files in /etc",
    { refused: '"list files in /etc": invalid params for list_files: path: paths must be relative to the workspace' },
  ],
  [
    "push to origin main --force",
    { refused: '"push to origin main --force": I never force-push; a plain push is not what you asked for' },
  ],
  ["git push -f", { refused: '"git push -f": I never force-push; a plain push is not what you asked for' }],
  ["tests", { steps: [["run_tests", { args: [] }]] }],
  // The coding agent: the instruction is taken whole (it is free text, never re-read as actions);
  // only a closing commit/push or "and tell me …" stands apart, as for other free-text steps.
  ["ask the coder to fix the failing test", { steps: [["code_task", { instruction: "fix the failing test" }]] }],
  [
    "code: add a --verbose flag to the CLI",
    { steps: [["code_task", { instruction: "add a --verbose flag to the CLI" }]] },
  ],
  [
    "ask the coder to fix the login bug and run the tests",
    { steps: [["code_task", { instruction: "fix the login bug and run the tests" }]] },
  ],
  [
    "ask the coder to delete the unused helper in src/a.ts",
    { steps: [["code_task", { instruction: "delete the unused helper in src/a.ts" }]] },
  ],
  [
    "code: show me the README and explain it",
    { steps: [["code_task", { instruction: "show me the README and explain it" }]] },
  ],
  [
    "code: fix the lint errors, then commit and push",
    {
      steps: [
        ["code_task", { instruction: "fix the lint errors" }],
        ["git_commit", { message: "Commit by SKYNET", addAll: true }],
        ["git_push", { remote: "origin" }],
      ],
    },
  ],
  [
    "ask the coding agent to add a --verbose flag and tell me what changed",
    { steps: [["code_task", { instruction: "add a --verbose flag" }]], question: "what changed" },
  ],
  [
    "don't ask the coder to fix it",
    {
      refused:
        '"don\'t ask the coder to fix it" says "don\'t"; I only plan what you ask me to do, so leave that part out',
    },
  ],
];

describe("rule planner phrasings", () => {
  it("has at least 100 distinct phrasings", () => {
    expect(new Set(TABLE.map(([p]) => p)).size).toBe(TABLE.length);
    expect(TABLE.length).toBeGreaterThanOrEqual(100);
  });

  it.each(TABLE)("%s", async (phrase, expected) => {
    const res = await plan(phrase);
    if ("refused" in expected) {
      expect(res).toEqual({ ok: false, error: { reason: expected.refused } });
      return;
    }
    expect(res.ok, res.ok ? "" : res.error.reason).toBe(true);
    if (!res.ok) return;
    expect(res.value.plan.proposedSteps.map((s) => [s.action, s.params])).toEqual(expected.steps);
    expect(res.value.question).toBe(expected.question);
    for (const step of res.value.plan.proposedSteps) expect(step.risk).toBe(getAction(step.action ?? "")?.risk);
  });

  it("never turns a request to undo, remove or not do something into a step", async () => {
    const verbs = ["delete", "remove", "clean", "revert", "undo", "reset", "uninstall", "discard", "drop"];
    const objects = ["the build folder", "the tests", "the last commit", "node_modules", "dependencies", "the lint"];
    for (const verb of verbs) {
      for (const object of objects) {
        const res = await plan(`${verb} ${object}`);
        expect(res.ok, `${verb} ${object}`).toBe(false);
      }
    }
    for (const neg of ["don't", "do not", "never"]) {
      for (const action of ["push", "commit", "build", "run the tests", "lint", "install dependencies"]) {
        const res = await plan(`check git status and ${neg} ${action}`);
        expect(res.ok, `${neg} ${action}`).toBe(false);
      }
    }
  });
});
