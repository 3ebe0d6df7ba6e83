// A local server speaking the Anthropic Messages API (POST /v1/messages) for tests and local
// runs: it checks auth (x-api-key or Authorization: Bearer), the anthropic-version header and the
// request body, records every request, and answers with real message objects. By default it
// plans like a careful model would (from the catalog's phrases); tests can script answers.
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { matchPhrase } from "../../../protocol/index.ts";
import { splitClauses } from "../../../src/planners/rules.ts";

export interface RecordedRequest {
  headers: IncomingHttpHeaders;
  body: MessagesRequest;
}

export interface MessagesRequest {
  model: string;
  max_tokens: number;
  messages: { role: string; content: unknown }[];
  system?: unknown;
  tools?: { name: string }[];
  tool_choice?: unknown;
}

export type FakeReply =
  | { kind: "tool"; input: unknown; name?: string }
  | { kind: "text"; text: string }
  | { kind: "error"; status: number; type: string; message: string }
  | { kind: "delay"; ms: number; reply: FakeReply };

/** A reply, or a handler choosing one from the request body (undefined: the default planner). */
export type FakeHandler = FakeReply | ((body: MessagesRequest) => FakeReply | undefined);

export interface FakeAnthropic {
  url: string;
  port: number;
  apiKey: string;
  requests: RecordedRequest[];
  /** Replies (or handlers) appended to the queue used in order by the next requests. */
  script(...replies: FakeHandler[]): void;
  /**
   * Replaces how the server answers: a list is a fresh queue (then the default planner), a
   * function answers every request until the next respond() call; respond([]) restores defaults.
   */
  respond(handlers: FakeHandler[] | ((body: MessagesRequest) => FakeReply | undefined)): void;
  close(): Promise<void>;
}

/**
 * The scripted mode: plans from the intent text with the rule planner's clause splitting and the
 * catalog's phrases, as a careful model would — one tool call per request. Clauses it does not
 * recognise are left out (so an unrecognisable intent gets an empty, invalid plan).
 */
export function defaultPlan(intent: string): unknown {
  const clauses = splitClauses(intent);
  const steps = clauses.flatMap((clause) => {
    const m = matchPhrase(clause);
    return m ? [{ description: clause, action: m.action.name, params: m.params, risk: m.action.risk }] : [];
  });
  return { summary: intent.slice(0, 200), steps, artifacts: [] };
}

function intentOf(body: MessagesRequest): string {
  const first = body.messages[0]?.content;
  const text = typeof first === "string" ? first : JSON.stringify(first);
  return /<user_intent>\n?([\s\S]*?)\n?<\/user_intent>/.exec(text)?.[1] ?? text;
}

let ids = 0;
function message(model: string, content: unknown[], stop: string) {
  ids += 1;
  return {
    id: `msg_fake${String(ids).padStart(20, "0")}`,
    type: "message",
    role: "assistant",
    model,
    content,
    stop_reason: stop,
    stop_sequence: null,
    usage: { input_tokens: 100, output_tokens: 50 },
  };
}

export async function startFakeAnthropic(opts: { port?: number; apiKey?: string } = {}): Promise<FakeAnthropic> {
  const apiKey = opts.apiKey ?? "sk-ant-test-key";
  const requests: RecordedRequest[] = [];
  const queue: FakeHandler[] = [];
  let responder: ((body: MessagesRequest) => FakeReply | undefined) | null = null;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { "Content-Type": "application/json", "request-id": `req_fake${ids}` });
        res.end(JSON.stringify(body));
      };
      const error = (status: number, type: string, msg: string) =>
        send(status, { type: "error", error: { type, message: msg } });
      if (req.method !== "POST" || req.url?.split("?")[0] !== "/v1/messages") {
        return error(404, "not_found_error", `no route ${req.method} ${req.url}`);
      }
      const key = req.headers["x-api-key"] ?? /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
      if (key !== apiKey) return error(401, "authentication_error", "invalid x-api-key");
      if (!req.headers["anthropic-version"])
        return error(400, "invalid_request_error", "anthropic-version header is required");
      let body: MessagesRequest;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as MessagesRequest;
      } catch {
        return error(400, "invalid_request_error", "request body is not valid JSON");
      }
      if (typeof body.model !== "string" || typeof body.max_tokens !== "number" || !Array.isArray(body.messages)) {
        return error(400, "invalid_request_error", "model, max_tokens and messages are required");
      }
      if (body.messages.length === 0 || body.messages[0]?.role !== "user") {
        return error(400, "invalid_request_error", "messages: first message must use the user role");
      }
      requests.push({ headers: req.headers, body });
      const toolName = body.tools?.[0]?.name ?? "submit_plan";
      const next = queue.shift();
      const chosen = typeof next === "function" ? next(body) : (next ?? responder?.(body));
      const reply: FakeReply = chosen ?? { kind: "tool", input: defaultPlan(intentOf(body)) };
      const answer = (r: FakeReply): void => {
        switch (r.kind) {
          case "delay":
            setTimeout(() => answer(r.reply), r.ms).unref();
            return;
          case "error":
            error(r.status, r.type, r.message);
            return;
          case "text":
            send(200, message(body.model, [{ type: "text", text: r.text }], "end_turn"));
            return;
          case "tool":
            send(
              200,
              message(
                body.model,
                [
                  {
                    type: "tool_use",
                    id: `toolu_fake${String(ids).padStart(16, "0")}`,
                    name: r.name ?? toolName,
                    input: r.input,
                  },
                ],
                "tool_use",
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
    respond: (handlers) => {
      queue.length = 0;
      if (typeof handlers === "function") {
        responder = handlers;
      } else {
        responder = null;
        queue.push(...handlers);
      }
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
