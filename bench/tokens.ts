// `npm run bench:tokens` (issue #15 item 3): what a plan and an answer cost in tokens, for a fixed
// set of intents, through the real planner and answer code against the Messages API stand-in.
// The stand-in cannot count real tokens, so the figures are an ESTIMATE: UTF-8 bytes of the
// request the SDK sends (system + tools + messages, as JSON) ÷ 4. The part up to the last
// cache_control breakpoint (tools, then system, then messages: the API's prefix order) is what
// prompt caching can serve; output tokens are only bounded (max_tokens), not measured.
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { claudeAnswer } from "../src/answers/claude.ts";
import { createPlanner } from "../src/planners/index.ts";
import { type MessagesRequest, startFakeAnthropic } from "../test/helpers/node/fake-anthropic.ts";

const ROOT = resolve(import.meta.dirname, "..");
const MODEL = "claude-sonnet-5-5";
/** The estimate's method, stated wherever a figure is shown. */
export const METHOD = "estimate: UTF-8 bytes of the JSON request ÷ 4 (no tokenizer offline)";

const INTENTS = [
  "check git status",
  "run the tests and tell me which failed",
  "show me the README",
  "get my project ready for review",
  "figure out why the build is slow and suggest one fix",
  "clean up stale branches that were merged last month",
];

const est = (v: unknown): number => (v === undefined ? 0 : Math.ceil(Buffer.byteLength(JSON.stringify(v)) / 4));
const hasCache = (v: unknown): boolean => JSON.stringify(v ?? null).includes('"cache_control"');

/** Estimated tokens of one request, and how many sit before (and at) its last cache breakpoint. */
function measure(body: MessagesRequest) {
  const parts = [
    { name: "tools", tokens: est(body.tools), cached: hasCache(body.tools) },
    { name: "system", tokens: est(body.system), cached: hasCache(body.system) },
    { name: "messages", tokens: est(body.messages), cached: hasCache(body.messages) },
  ];
  const last = parts.map((p) => p.cached).lastIndexOf(true);
  const cacheable = parts.slice(0, last + 1).reduce((a, p) => a + p.tokens, 0);
  const total = parts.reduce((a, p) => a + p.tokens, 0);
  return {
    inputTokens: total,
    cacheablePrefixTokens: cacheable,
    uncachedAfterFirstCall: total - cacheable,
    maxOutputTokens: body.max_tokens,
    parts: Object.fromEntries(parts.map((p) => [p.name, p.tokens])),
  };
}

async function main(): Promise<void> {
  const fake = await startFakeAnthropic();
  try {
    const planner = createPlanner({ anthropicApiKey: fake.apiKey, anthropicBaseUrl: fake.url, anthropicModel: MODEL });
    // The model's plan is scripted (its content does not change what the request costs).
    fake.always({
      kind: "tool",
      input: {
        summary: "scripted plan",
        steps: [{ description: "status", action: "git_status", risk: "READ_ONLY", params: {} }],
      },
    });
    const plans = [];
    for (const intent of INTENTS) {
      const before = fake.requests.length;
      const res = await planner.plan({ jobId: "job_0123456789abcdef", intent, projectId: "bench" });
      const calls = fake.requests.slice(before).map((r) => measure(r.body));
      plans.push({
        intent,
        planner: res.ok ? res.value.plan.planner : `refused: ${res.error.reason}`,
        modelCalls: calls.length,
        requests: calls,
      });
    }
    fake.reset();
    fake.always({ kind: "text", text: "Two tests failed: parser_spec and cli_spec." });
    const answered = await claudeAnswer(
      {
        intent: "run the tests and tell me which failed",
        question: "which failed",
        status: "FAILED",
        error: "step s1 exited 1",
        steps: [
          {
            stepId: "s1",
            action: "run_tests",
            state: "failed",
            exitCode: 1,
            error: null,
            output: `${"ok test line\n".repeat(400)}FAIL parser_spec\nFAIL cli_spec\n`,
          },
        ],
      },
      { apiKey: fake.apiKey, baseURL: fake.url, model: MODEL },
    );
    const answer = {
      ok: answered.ok,
      modelCalls: fake.requests.length,
      requests: fake.requests.map((r) => measure(r.body)),
    };
    const problems = fake.problems();
    const result = { method: METHOD, model: MODEL, plans, answer, standInProblems: problems };
    const file = join(ROOT, "bench/results", `tokens-${new Date().toISOString().replaceAll(":", "-")}.json`);
    await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
    const rows = [
      ...plans.map((p) => ({ what: `plan: ${p.intent}`, who: p.planner, calls: p.modelCalls, r: p.requests[0] })),
      {
        what: "answer: run the tests and tell me which failed",
        who: "claude",
        calls: answer.modelCalls,
        r: answer.requests[0],
      },
    ];
    const table = rows
      .map(
        ({ what, who, calls, r }) =>
          `| ${what} | ${who} | ${calls} | ${r?.inputTokens ?? 0} | ${r?.cacheablePrefixTokens ?? 0} | ${r?.uncachedAfterFirstCall ?? 0} | ${r?.maxOutputTokens ?? "—"} |`,
      )
      .join("\n");
    const section = `<!-- tokens:start -->
## Tokens per plan and per answer (\`npm run bench:tokens\`, ${new Date().toISOString().slice(0, 10)})

Through the real planner (src/planners) and answer code (src/answers/claude.ts) against the Messages
API stand-in, model ${MODEL}. **Input tokens are an ${METHOD}**; JSON escaping makes it an
overestimate of real tokens. "Cacheable prefix" is everything up to the request's last
\`cache_control\` breakpoint (tools, then system, then messages), which later calls read from the
cache; "uncached once cached" is the rest. Output tokens are not measured (the stand-in's reply is
scripted): the column shows the request's \`max_tokens\` cap. The rule planner's intents make 0 model calls.

| task | planned by | model calls | input tokens (est.) | cacheable prefix (est.) | uncached once cached (est.) | max output tokens |
|---|---|---|---|---|---|---|
${table}
<!-- tokens:end -->`;
    const path = join(ROOT, "BENCHMARKS.md");
    const previous = await readFile(path, "utf8").catch(() => "");
    const marked = /<!-- tokens:start -->[\s\S]*?<!-- tokens:end -->/;
    await writeFile(
      path,
      marked.test(previous) ? previous.replace(marked, section) : `${previous.trimEnd()}\n\n${section}\n`,
    );
    console.log(`${section}\n\nStand-in problems: ${problems.length ? problems.join("; ") : "none"}. Wrote ${file}.`);
  } finally {
    await fake.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
