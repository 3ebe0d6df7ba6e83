// The Messages API stand-in refuses what the real API refuses, answers only what was scripted,
// and reports every problem, so the planner tests built on it can fail.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type FakeAnthropic, startFakeAnthropic } from "../helpers/node/fake-anthropic.ts";

let fake: FakeAnthropic;
beforeAll(async () => {
  fake = await startFakeAnthropic();
});
afterAll(async () => {
  await fake.close();
});
afterEach(() => fake.reset());

const TOOL = { name: "submit_plan", input_schema: { type: "object", properties: {} } };
const good = {
  model: "claude-x",
  max_tokens: 100,
  messages: [{ role: "user", content: "hi" }],
  tools: [TOOL],
  tool_choice: { type: "tool", name: "submit_plan" },
};

async function send(body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${fake.url}/v1/messages`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-api-key": fake.apiKey,
      "anthropic-version": "2023-06-01",
      ...headers,
    },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as { type: string; error?: { type: string; message: string }; content?: unknown[] };
  return { status: res.status, json, headers: res.headers };
}

describe("Messages API stand-in", () => {
  it("answers a well-formed request from the script, in order", async () => {
    fake.script({ kind: "text", text: "one" }, { kind: "tool", input: { a: 1 } });
    const first = await send(good);
    const second = await send(good);
    expect(first.json.content).toEqual([{ type: "text", text: "one" }]);
    expect(second.json.content).toMatchObject([{ type: "tool_use", name: "submit_plan", input: { a: 1 } }]);
    expect(fake.problems()).toEqual([]);
  });

  it("answers an unscripted request with a 500 and records it as a problem", async () => {
    const res = await send(good);
    expect(res.status).toBe(500);
    expect(res.json.error?.message).toMatch(/^unscripted request/);
    expect(fake.problems()).toHaveLength(1);
    expect(fake.problems()[0]).toMatch(/^unscripted request #1/);
  });

  it("reports scripted replies nobody asked for", () => {
    fake.script({ kind: "text", text: "unused" });
    expect(fake.problems()).toEqual(["1 scripted reply was never asked for"]);
  });

  const refusals: [string, unknown, Record<string, string>, RegExp][] = [
    ["no anthropic-version", good, { "anthropic-version": "" }, /anthropic-version/],
    ["a made-up version", good, { "anthropic-version": "2024-99-99" }, /is not a valid version/],
    ["no model", { ...good, model: undefined }, {}, /^model: Field required/],
    ["an empty model", { ...good, model: "" }, {}, /^model: String should have at least 1 character/],
    ["no max_tokens", { ...good, max_tokens: undefined }, {}, /^max_tokens: Field required/],
    ["max_tokens 0", { ...good, max_tokens: 0 }, {}, /^max_tokens: Input should be greater than or equal to 1/],
    ["no messages", { ...good, messages: [] }, {}, /^messages: at least one message/],
    [
      "an assistant first",
      { ...good, messages: [{ role: "assistant", content: "x" }] },
      {},
      /first message must use the "user" role/,
    ],
    [
      "two user turns in a row",
      {
        ...good,
        messages: [
          { role: "user", content: "a" },
          { role: "user", content: "b" },
        ],
      },
      {},
      /roles must alternate/,
    ],
    [
      "a tool_result without its tool_use",
      {
        ...good,
        messages: [
          { role: "user", content: "a" },
          { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "submit_plan", input: {} }] },
          { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_2", content: "x" }] },
        ],
      },
      {},
      /^messages\.2\.content\.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_2/,
    ],
    [
      "a tool_use left unanswered",
      {
        ...good,
        messages: [
          { role: "user", content: "a" },
          { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "submit_plan", input: {} }] },
          { role: "user", content: "try again" },
        ],
      },
      {},
      /^messages\.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1/,
    ],
    [
      "tool_choice naming a missing tool",
      { ...good, tool_choice: { type: "tool", name: "other" } },
      {},
      /Tool 'other' not found/,
    ],
    ["tool_choice without tools", { ...good, tools: undefined }, {}, /only be specified while providing tools/],
    [
      "a tool whose schema is not an object schema",
      { ...good, tools: [{ name: "submit_plan", input_schema: { type: "array" } }] },
      {},
      /input_schema\.type: Input should be 'object'/,
    ],
  ];
  for (const [what, body, headers, message] of refusals) {
    it(`refuses ${what} with a 400 invalid_request_error`, async () => {
      fake.script({ kind: "text", text: "never sent" });
      const res = await send(body, headers);
      expect(res.status).toBe(400);
      expect(res.json.error?.type).toBe("invalid_request_error");
      expect(res.json.error?.message).toMatch(message);
      expect(fake.requests).toHaveLength(0);
      expect(fake.problems()).toEqual([
        `refused (400): ${res.json.error?.message}`,
        "1 scripted reply was never asked for",
      ]);
    });
  }

  it("accepts a repair round that answers the tool_use it follows", async () => {
    fake.script({ kind: "text", text: "ok" });
    const res = await send({
      ...good,
      messages: [
        { role: "user", content: "a" },
        { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "submit_plan", input: {} }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", is_error: true, content: "bad" }] },
      ],
    });
    expect(res.status).toBe(200);
    expect(fake.problems()).toEqual([]);
  });

  it("refuses a wrong key, and sends retry-after with 429 and 529", async () => {
    expect((await send(good, { "x-api-key": "sk-wrong" })).status).toBe(401);
    fake.script(
      { kind: "error", status: 429, type: "rate_limit_error", message: "slow down", retryAfterS: 7 },
      { kind: "error", status: 529, type: "overloaded_error", message: "Overloaded" },
      { kind: "error", status: 500, type: "api_error", message: "boom" },
    );
    const limited = await send(good);
    const overloaded = await send(good);
    const failed = await send(good);
    expect([limited.status, limited.headers.get("retry-after")]).toEqual([429, "7"]);
    expect([overloaded.status, overloaded.headers.get("retry-after")]).toEqual([529, "1"]);
    expect([failed.status, failed.headers.get("retry-after")]).toEqual([500, null]);
  });
});
