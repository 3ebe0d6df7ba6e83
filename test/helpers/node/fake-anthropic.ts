// A local server speaking the Anthropic Messages API (POST /v1/messages) for tests. It knows
// nothing of SKYNET: it answers only what the test scripted, in order, and a request with nothing
// scripted gets a 500 and is recorded as a problem the test sees (`problems()`). It checks what
// the real API checks before answering (auth, the anthropic-version value, model, max_tokens,
// message roles and their order, tool_use/tool_result pairing, tools and tool_choice) and
// refuses a malformed request with a 400 invalid_request_error, as the real API does.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";

export interface RecordedRequest {
  headers: IncomingHttpHeaders;
  body: MessagesRequest;
}

export interface MessagesRequest {
  model: string;
  max_tokens: number;
  messages: { role: string; content: unknown }[];
  system?: unknown;
  tools?: { name: string; input_schema?: unknown; strict?: boolean }[];
  tool_choice?: unknown;
}

/** The usage an answer reports (default: 100 input, 50 output, nothing cached). */
export interface FakeUsage {
  input_tokens: number;
  output_tokens: number;
  cache_read_input_tokens?: number;
  cache_creation_input_tokens?: number;
}

export type FakeReply =
  | { kind: "tool"; input: unknown; name?: string; usage?: FakeUsage }
  | { kind: "text"; text: string; usage?: FakeUsage }
  /** An API error; 429 and 529 carry `retry-after` (seconds, default 1) as the real API's do. */
  | { kind: "error"; status: number; type: string; message: string; retryAfterS?: number }
  | { kind: "delay"; ms: number; reply: FakeReply };

export interface FakeAnthropic {
  url: string;
  port: number;
  apiKey: string;
  /** Requests that passed the shape checks (answered from the script or unscripted). */
  requests: RecordedRequest[];
  /** Appends replies to the script; each request takes the next one. */
  script(...replies: FakeReply[]): void;
  /** Answers every request with this reply once the script is used up (until reset). */
  always(reply: FakeReply): void;
  /**
   * What went wrong on the caller's side: requests refused for their shape, requests that found
   * nothing scripted, and scripted replies nobody asked for. Tests expect this to be empty.
   */
  problems(): string[];
  /** Forgets the script, the records and the problems. */
  reset(): void;
  close(): Promise<void>;
}

/** The versions the real API documents for the `anthropic-version` header (its versioning page). */
const API_VERSIONS = new Set(["2026-10-21", "2023-06-01", "2023-01-01"]);
const TOOL_NAME = /^[a-zA-Z0-9_-]{1,128}$/;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** The real API's request checks; returns the error message of the first one that fails. */
export function checkRequest(headers: IncomingHttpHeaders, body: unknown): string | null {
  const version = headers["anthropic-version"];
  if (version === undefined) return "anthropic-version: header is required";
  if (!API_VERSIONS.has(String(version))) return `anthropic-version: "${String(version)}" is not a valid version`;
  if (!isObject(body)) return "the request body must be a JSON object";
  if (body.model === undefined) return "model: Field required";
  if (typeof body.model !== "string" || body.model.trim() === "")
    return "model: String should have at least 1 character";
  if (body.max_tokens === undefined) return "max_tokens: Field required";
  if (!Number.isInteger(body.max_tokens) || (body.max_tokens as number) < 1) {
    return "max_tokens: Input should be greater than or equal to 1";
  }
  if (version === "2026-10-21") {
    // That version removed the sampling parameters: sending one is a 400.
    for (const removed of ["temperature", "top_p", "top_k"]) {
      if (body[removed] !== undefined) return `${removed}: Extra inputs are not permitted`;
    }
  }
  if (!Array.isArray(body.messages)) return "messages: Field required";
  if (body.messages.length === 0) return "messages: at least one message is required";
  const toolNames = new Set<string>();
  if (body.tools !== undefined) {
    if (!Array.isArray(body.tools)) return "tools: Input should be a valid list";
    for (const [i, tool] of body.tools.entries()) {
      if (!isObject(tool) || typeof tool.name !== "string" || !TOOL_NAME.test(tool.name)) {
        return `tools.${i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'`;
      }
      if (toolNames.has(tool.name)) return `tools: Tool names must be unique: ${tool.name}`;
      toolNames.add(tool.name);
      if (!isObject(tool.input_schema) || tool.input_schema.type !== "object") {
        return `tools.${i}.custom.input_schema.type: Input should be 'object'`;
      }
      if (tool.strict !== undefined && typeof tool.strict !== "boolean") {
        return `tools.${i}.custom.strict: Input should be a valid boolean`;
      }
      if (tool.strict === true) {
        const bad = strictSchemaProblem(tool.input_schema, `tools.${i}.custom.input_schema`);
        if (bad) return bad;
      }
    }
  }
  const system = body.system;
  if (system !== undefined && typeof system !== "string") {
    if (!Array.isArray(system)) return "system: Input should be a valid string or list";
    for (const [i, b] of system.entries()) {
      if (!isObject(b) || b.type !== "text" || typeof b.text !== "string" || b.text === "") {
        return `system.${i}: system blocks must be non-empty text blocks`;
      }
    }
  }
  const cacheProblem = checkCacheControl(body);
  if (cacheProblem) return cacheProblem;
  if (body.tool_choice !== undefined) {
    const choice = body.tool_choice;
    if (!isObject(choice) || !["auto", "any", "tool", "none"].includes(String(choice.type))) {
      return "tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'";
    }
    if ((choice.type === "tool" || choice.type === "any") && toolNames.size === 0) {
      return "tool_choice: tool_choice may only be specified while providing tools.";
    }
    if (choice.type === "tool") {
      if (typeof choice.name !== "string") return "tool_choice.tool.name: Field required";
      if (!toolNames.has(choice.name)) return `tool_choice: Tool '${choice.name}' not found in provided tools`;
    }
  }
  return checkMessages(body.messages);
}

/** Schema keywords strict tool use refuses (its documented JSON Schema limitations). */
const STRICT_UNSUPPORTED = [
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "minLength",
  "maxLength",
  "maxItems",
];

function strictSchemaProblem(node: unknown, at: string): string | null {
  if (Array.isArray(node)) {
    for (const [i, n] of node.entries()) {
      const bad = strictSchemaProblem(n, `${at}.${i}`);
      if (bad) return bad;
    }
    return null;
  }
  if (!isObject(node)) return null;
  for (const k of STRICT_UNSUPPORTED) {
    if (k in node) return `${at}: '${k}' is not supported with strict: true`;
  }
  if (typeof node.minItems === "number" && node.minItems > 1) {
    return `${at}: minItems values other than 0 or 1 are not supported with strict: true`;
  }
  if ((node.type === "object" || isObject(node.properties)) && node.additionalProperties !== false) {
    return `${at}: additionalProperties must be set to false for object types with strict: true`;
  }
  for (const [k, v] of Object.entries(node)) {
    if (k === "enum" || k === "const" || k === "default" || k === "examples") continue;
    const sub = k === "properties" && isObject(v) ? Object.values(v) : v;
    const bad = strictSchemaProblem(sub, `${at}.${k}`);
    if (bad) return bad;
  }
  return null;
}

/** cache_control: only {type: "ephemeral", ttl?: "5m" | "1h"}, at most 4 breakpoints per request. */
function checkCacheControl(body: Json): string | null {
  let count = 0;
  const blocks: unknown[] = [
    ...(Array.isArray(body.tools) ? body.tools : []),
    ...(Array.isArray(body.system) ? body.system : []),
    ...(Array.isArray(body.messages)
      ? body.messages.flatMap((m) => (isObject(m) && Array.isArray(m.content) ? m.content : []))
      : []),
  ];
  for (const b of blocks) {
    if (!isObject(b) || b.cache_control === undefined || b.cache_control === null) continue;
    const cc = b.cache_control;
    if (!isObject(cc) || cc.type !== "ephemeral") return "cache_control.type: Input should be 'ephemeral'";
    if (cc.ttl !== undefined && cc.ttl !== "5m" && cc.ttl !== "1h")
      return "cache_control.ttl: Input should be '5m' or '1h'";
    count += 1;
  }
  if (count > 4) return `A maximum of 4 blocks with cache_control may be provided. Found ${count}.`;
  return null;
}

function checkMessages(all: unknown[]): string | null {
  // The API takes system-role messages inside the conversation (text only, never first); they
  // stand outside the user/assistant alternation and the tool_use/tool_result pairing.
  for (const [i, m] of all.entries()) {
    if (!isObject(m) || m.role !== "system") continue;
    if (i === 0) return 'messages: first message must use the "user" role';
    const texts = typeof m.content === "string" ? [m.content] : Array.isArray(m.content) ? m.content : null;
    if (!texts || texts.some((b) => typeof b !== "string" && !(isObject(b) && b.type === "text" && b.text !== ""))) {
      return `messages.${i}.content: system messages take non-empty text only`;
    }
  }
  const messages = all.filter((m) => !(isObject(m) && m.role === "system"));
  let previousToolUses = new Set<string>();
  for (const [i, m] of messages.entries()) {
    if (!isObject(m) || (m.role !== "user" && m.role !== "assistant")) {
      return `messages.${i}.role: Input should be 'user' or 'assistant'`;
    }
    if (i === 0 && m.role !== "user") return 'messages: first message must use the "user" role';
    const prev = messages[i - 1] as Json | undefined;
    if (prev && prev.role === m.role) {
      return `messages: roles must alternate between "user" and "assistant", but found multiple "${m.role}" roles in a row`;
    }
    const blocks: Json[] = [];
    if (typeof m.content === "string") {
      if (m.content === "" && i < messages.length - 1) return `messages.${i}: all messages must have non-empty content`;
    } else if (Array.isArray(m.content)) {
      if (m.content.length === 0) return `messages.${i}: all messages must have non-empty content`;
      for (const [j, b] of m.content.entries()) {
        if (!isObject(b) || typeof b.type !== "string") return `messages.${i}.content.${j}.type: Field required`;
        if (b.type === "text" && (typeof b.text !== "string" || b.text === "")) {
          return "messages: text content blocks must be non-empty";
        }
        blocks.push(b);
      }
    } else {
      return `messages.${i}.content: Input should be a valid string or list`;
    }
    const results = blocks.filter((b) => b.type === "tool_result");
    if (m.role === "assistant" && results.length > 0) {
      return `messages.${i}.content: tool_result blocks are only allowed in user messages`;
    }
    for (const [j, b] of blocks.entries()) {
      if (b.type !== "tool_result") continue;
      if (!previousToolUses.has(String(b.tool_use_id))) {
        return `messages.${i}.content.${j}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${String(b.tool_use_id)}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`;
      }
    }
    if (m.role === "user" && previousToolUses.size > 0) {
      const answered = new Set(results.map((b) => String(b.tool_use_id)));
      const missing = [...previousToolUses].filter((id) => !answered.has(id));
      if (missing.length > 0) {
        return `messages.${i - 1}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(", ")}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`;
      }
    }
    previousToolUses = new Set(
      m.role === "assistant" ? blocks.filter((b) => b.type === "tool_use").map((b) => String(b.id)) : [],
    );
  }
  return null;
}

let ids = 0;
function message(model: string, content: unknown[], stop: string, usage?: FakeUsage) {
  ids += 1;
  return {
    id: `msg_fake${String(ids).padStart(20, "0")}`,
    type: "message",
    role: "assistant",
    model,
    content,
    stop_reason: stop,
    stop_sequence: null,
    usage: {
      cache_read_input_tokens: 0,
      cache_creation_input_tokens: 0,
      ...(usage ?? { input_tokens: 100, output_tokens: 50 }),
    },
  };
}

/** The message as the event stream the real API sends for `stream: true`. */
function sendStream(res: ServerResponse, msg: ReturnType<typeof message>): void {
  if (res.destroyed) return;
  res.writeHead(200, {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "request-id": `req_fake${ids}`,
  });
  const event = (type: string, data: Json) =>
    res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
  const { content, stop_reason, stop_sequence, usage, ...head } = msg;
  event("message_start", {
    message: { ...head, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } },
  });
  for (const [index, block] of (content as Json[]).entries()) {
    if (block.type === "text") {
      event("content_block_start", { index, content_block: { type: "text", text: "" } });
      event("content_block_delta", { index, delta: { type: "text_delta", text: block.text } });
    } else {
      event("content_block_start", { index, content_block: { ...block, input: {} } });
      event("content_block_delta", {
        index,
        delta: { type: "input_json_delta", partial_json: JSON.stringify(block.input) },
      });
    }
    event("content_block_stop", { index });
  }
  event("message_delta", { delta: { stop_reason, stop_sequence }, usage: { output_tokens: usage.output_tokens } });
  event("message_stop", {});
  res.end();
}

export async function startFakeAnthropic(opts: { port?: number; apiKey?: string } = {}): Promise<FakeAnthropic> {
  const apiKey = opts.apiKey ?? "sk-ant-test-key";
  const requests: RecordedRequest[] = [];
  const queue: FakeReply[] = [];
  const problems: string[] = [];
  let fallback: FakeReply | null = null;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        if (res.destroyed) return;
        res.writeHead(status, { "Content-Type": "application/json", "request-id": `req_fake${ids}`, ...headers });
        res.end(JSON.stringify(body));
      };
      const error = (status: number, type: string, msg: string, headers: Record<string, string> = {}) =>
        send(status, { type: "error", error: { type, message: msg } }, headers);
      if (req.method !== "POST" || req.url?.split("?")[0] !== "/v1/messages") {
        return error(404, "not_found_error", `no route ${req.method} ${req.url}`);
      }
      const key = req.headers["x-api-key"] ?? /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
      if (key !== apiKey) return error(401, "authentication_error", "invalid x-api-key");
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        problems.push("refused: the request body is not valid JSON");
        return error(400, "invalid_request_error", "There was an error parsing the body of your request");
      }
      const invalid = checkRequest(req.headers, body);
      if (invalid) {
        problems.push(`refused (400): ${invalid}`);
        return error(400, "invalid_request_error", invalid);
      }
      const request = body as MessagesRequest;
      requests.push({ headers: req.headers, body: request });
      const reply = queue.shift() ?? fallback;
      if (!reply) {
        problems.push(`unscripted request #${requests.length}: ${JSON.stringify(request.messages).slice(0, 200)}`);
        return error(500, "api_error", "unscripted request: the test scripted no answer for it");
      }
      const toolName = request.tools?.[0]?.name ?? "tool";
      // A streamed request gets its answer as server-sent events, as the real API sends them.
      const reply200 = (body: ReturnType<typeof message>) =>
        (request as unknown as Json).stream === true ? sendStream(res, body) : send(200, body);
      const answer = (r: FakeReply): void => {
        switch (r.kind) {
          case "delay":
            setTimeout(() => answer(r.reply), r.ms).unref();
            return;
          case "error": {
            const retry: Record<string, string> =
              r.status === 429 || r.status === 529 ? { "retry-after": String(r.retryAfterS ?? 1) } : {};
            error(r.status, r.type, r.message, retry);
            return;
          }
          case "text":
            reply200(message(request.model, [{ type: "text", text: r.text }], "end_turn", r.usage));
            return;
          case "tool":
            reply200(
              message(
                request.model,
                [
                  {
                    type: "tool_use",
                    id: `toolu_fake${String(ids).padStart(16, "0")}`,
                    name: r.name ?? toolName,
                    input: r.input,
                  },
                ],
                "tool_use",
                r.usage,
              ),
            );
        }
      };
      answer(reply);
    });
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    apiKey,
    requests,
    script: (...replies) => queue.push(...replies),
    always: (reply) => {
      fallback = reply;
    },
    problems: () => [
      ...problems,
      ...(queue.length > 0
        ? [`${queue.length} scripted repl${queue.length === 1 ? "y was" : "ies were"} never asked for`]
        : []),
    ],
    reset: () => {
      queue.length = 0;
      requests.length = 0;
      problems.length = 0;
      fallback = null;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
