// A local server speaking the Telegram Bot API (https://core.telegram.org/bots/api) as strictly
// as Telegram does for the methods SKYNET uses: JSON, urlencoded and multipart bodies, required
// parameters, HTML parse mode with Telegram's tag set and entity rules, the 4096-character limit,
// "message is not modified" (same rendered text, entities and keyboard), inline buttons, one
// answer per callback query, and Telegram's own refusals: flood control (429 with retry_after),
// a user who blocked the bot (403), a chat that does not exist (400). It records every call for
// assertions (GET /__calls, POST /__reset), can hand updates to a long-polling client
// (POST /__updates), can be told to refuse the next calls of a method (POST /__fail) or how a
// chat behaves (POST /__chat), and marks each refusal the test arranged or acknowledged
// (POST /__ack) as expected, so any other refusal can fail the test that caused it.
import { createServer, type IncomingMessage, type Server } from "node:http";

export interface RecordedCall {
  /** Position in the whole record, for `GET /__calls?since=`. */
  seq: number;
  method: string;
  params: Record<string, unknown>;
  at: number;
  /** Whether the stand-in accepted the call, and its error description when not. */
  ok?: boolean;
  error?: string;
  /** What the stand-in answered, when it accepted the call (a sent message's message_id, …). */
  result?: unknown;
  /** A refusal the test arranged (/__fail, /__chat) or acknowledged (/__ack). */
  expected?: boolean;
}

/** How a chat behaves, as a test arranged it (POST /__chat). */
interface ChatState {
  /** "blocked": the user blocked the bot (403); "missing": no such chat (400). */
  state: "ok" | "blocked" | "missing";
  /** Flood control: every call to the chat before this time gets a 429 with the seconds left. */
  floodUntil?: number;
}

type Params = Record<string, unknown>;
interface StoredMessage {
  chatId: string;
  messageId: number;
  /** What Telegram compares for "message is not modified": the rendered text and entities. */
  rendered: string;
  markup: string;
}

const ALLOWED_TAGS = new Set([
  "b",
  "strong",
  "i",
  "em",
  "u",
  "ins",
  "s",
  "strike",
  "del",
  "span",
  "tg-spoiler",
  "a",
  "code",
  "pre",
  "blockquote",
  "tg-emoji",
]);

/** Tags Telegram treats as the same entity. */
const SAME_ENTITY: Record<string, string> = { strong: "b", em: "i", ins: "u", strike: "s", del: "s" };

/**
 * Parses Telegram HTML the way the Bot API does; returns the visible text and its entities
 * (type@offset+length, so `<b>` and `<strong>` are the same message) or an error.
 */
export function parseTelegramHtml(
  html: string,
): { ok: true; text: string; entities: string[] } | { ok: false; error: string } {
  const stack: { name: string; offset: number; raw: string }[] = [];
  const entities: string[] = [];
  let text = "";
  let i = 0;
  while (i < html.length) {
    const ch = html[i];
    if (ch === "<") {
      const end = html.indexOf(">", i);
      if (end < 0) return { ok: false, error: `Can't parse entities: unclosed start tag at byte offset ${i}` };
      const raw = html.slice(i + 1, end);
      const closing = raw.startsWith("/");
      const name = (closing ? raw.slice(1) : raw).trim().split(/\s+/)[0]?.toLowerCase() ?? "";
      if (!ALLOWED_TAGS.has(name)) {
        return { ok: false, error: `Can't parse entities: unsupported start tag "${name}" at byte offset ${i}` };
      }
      if (closing) {
        const open = stack.pop();
        if (open?.name !== name) {
          return { ok: false, error: `Can't parse entities: can't find end tag corresponding to start tag "${name}"` };
        }
        const attrs = open.raw.slice(name.length).trim();
        if (text.length > open.offset) {
          entities.push(
            `${SAME_ENTITY[name] ?? name}${attrs ? `[${attrs}]` : ""}@${open.offset}+${text.length - open.offset}`,
          );
        }
      } else {
        if (name === "a" && !/\bhref\s*=\s*"[^"]*"/.test(raw)) {
          return { ok: false, error: "Can't parse entities: href attribute is missing" };
        }
        stack.push({ name, offset: text.length, raw: raw.trim() });
      }
      i = end + 1;
      continue;
    }
    if (ch === ">") return { ok: false, error: `Can't parse entities: character '>' is reserved at byte offset ${i}` };
    if (ch === "&") {
      const m = /^&(lt|gt|amp|quot|#\d{1,7}|#x[0-9a-fA-F]{1,6});/.exec(html.slice(i));
      if (!m) return { ok: false, error: `Can't parse entities: character '&' is reserved at byte offset ${i}` };
      const ent = m[1] ?? "";
      text += ent === "lt" ? "<" : ent === "gt" ? ">" : ent === "amp" ? "&" : ent === "quot" ? '"' : "?";
      i += m[0].length;
      continue;
    }
    text += ch;
    i += 1;
  }
  if (stack.length > 0) {
    return { ok: false, error: `Can't parse entities: can't find end tag for "${stack.at(-1)?.name}"` };
  }
  return { ok: true, text, entities: entities.sort() };
}

/** A small multipart/form-data parser (RFC 7578): fields as strings, files as {filename, size, text}. */
function parseMultipart(body: Buffer, contentType: string): Params {
  const boundary = /boundary="?([^";]+)"?/i.exec(contentType)?.[1];
  if (!boundary) throw new Error("multipart body without a boundary");
  const delimiter = Buffer.from(`--${boundary}`);
  const out: Params = {};
  let pos = body.indexOf(delimiter);
  if (pos < 0) throw new Error("multipart body without its boundary");
  for (;;) {
    pos += delimiter.length;
    if (body.subarray(pos, pos + 2).toString() === "--") break;
    pos += 2; // CRLF after the delimiter
    const headerEnd = body.indexOf("\r\n\r\n", pos);
    if (headerEnd < 0) throw new Error("malformed multipart part");
    const headers = body.subarray(pos, headerEnd).toString("utf8");
    const next = body.indexOf(delimiter, headerEnd + 4);
    if (next < 0) throw new Error("unterminated multipart body");
    const content = body.subarray(headerEnd + 4, next - 2); // CRLF before the next delimiter
    const name = /(?:^|;)\s*name="([^"]*)"/i.exec(headers)?.[1];
    // grammY (like many clients) sends filename unquoted; Telegram accepts both.
    const filename = /filename=(?:"([^"]*)"|([^;\r\n]*))/i
      .exec(headers)
      ?.slice(1)
      .find((x) => x !== undefined);
    if (name === undefined) throw new Error("multipart part without a name");
    out[name] =
      filename === undefined
        ? content.toString("utf8")
        : { filename, size: content.length, text: content.length <= 2_000_000 ? content.toString("utf8") : undefined };
    pos = next;
  }
  // Files may be sent under their own part and referenced as "attach://<part name>".
  for (const [k, v] of Object.entries(out)) {
    if (typeof v === "string" && v.startsWith("attach://")) {
      const part = out[v.slice("attach://".length)];
      if (part === undefined) throw new Error(`${k} refers to a missing part ${v}`);
      out[k] = part;
    }
  }
  return out;
}

async function readParams(req: IncomingMessage, body: Buffer): Promise<Params> {
  const type = req.headers["content-type"] ?? "";
  if (body.length === 0) return {};
  if (type.includes("application/json")) return JSON.parse(body.toString("utf8")) as Params;
  if (type.includes("application/x-www-form-urlencoded")) {
    return Object.fromEntries(new URLSearchParams(body.toString("utf8")));
  }
  if (type.includes("multipart/form-data")) return parseMultipart(body, type);
  throw new Error(`unsupported content type ${type}`);
}

const parseJsonParam = (v: unknown): unknown => {
  if (typeof v !== "string") return v;
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
};

class BotApiError extends Error {
  readonly code: number;
  readonly parameters: Params | undefined;
  /** The test arranged this refusal. */
  readonly arranged: boolean;
  constructor(code: number, description: string, parameters?: Params, arranged = false) {
    super(description);
    this.code = code;
    this.parameters = parameters;
    this.arranged = arranged;
  }
}

/** A scripted refusal: the next `times` calls of `method` fail this way. */
interface Failure {
  method: string;
  /** Only calls to this chat (so parallel test files are not affected). */
  chatId?: string;
  errorCode: number;
  description: string;
  retryAfter?: number;
  times: number;
}

export interface FakeTelegram {
  url: string;
  token: string;
  calls: RecordedCall[];
  /**
   * Refusals nobody arranged or acknowledged, then acknowledges them (so each is reported once).
   * `expected` lists patterns of refusals this test expects: those are acknowledged silently.
   */
  takeUnexpectedRefusals(expected?: RegExp[]): RecordedCall[];
  close(): Promise<void>;
}

/** One line per refused call, for a test failure. */
export function describeRefusals(refused: RecordedCall[]): string {
  return refused
    .map((c) => `  ${c.method} (chat ${String(c.params.chat_id ?? c.params.callback_query_id ?? "?")}): ${c.error}`)
    .join("\n");
}

export async function startFakeTelegram(opts: { port?: number; token?: string } = {}): Promise<FakeTelegram> {
  const token = opts.token ?? "123456:TEST-TOKEN";
  const botId = Number(token.split(":")[0]);
  const calls: RecordedCall[] = [];
  const messages = new Map<string, StoredMessage>();
  const updates: unknown[] = [];
  const failures: Failure[] = [];
  const chats = new Map<string, ChatState>();
  const answeredQueries = new Set<string>();
  let nextMessageId = 1000;
  let nextUpdateId = 1;

  const requireParam = (p: Params, name: string): unknown => {
    if (p[name] === undefined || p[name] === "") throw new BotApiError(400, `Bad Request: ${name} is empty`);
    return p[name];
  };
  const checkText = (
    p: Params,
    field: "text" | "caption",
    required: boolean,
  ): { visible: string; rendered: string } => {
    const raw = p[field];
    if (raw === undefined || raw === "") {
      if (required) throw new BotApiError(400, "Bad Request: message text is empty");
      return { visible: "", rendered: "" };
    }
    const html = String(raw);
    let visible = html;
    let entities: string[] = [];
    if (p.parse_mode !== undefined) {
      if (p.parse_mode !== "HTML")
        throw new BotApiError(400, `Bad Request: unsupported parse_mode ${String(p.parse_mode)}`);
      const parsed = parseTelegramHtml(html);
      if (!parsed.ok) throw new BotApiError(400, `Bad Request: ${parsed.error}`);
      visible = parsed.text;
      entities = parsed.entities;
    }
    const limit = field === "text" ? 4096 : 1024;
    if (visible.trim() === "" && required) throw new BotApiError(400, "Bad Request: message text is empty");
    if (visible.length > limit) {
      throw new BotApiError(
        400,
        field === "text" ? "Bad Request: message is too long" : "Bad Request: message caption is too long",
      );
    }
    // Telegram trims the text; the trimmed text and its entities are what it compares on edits.
    return { visible, rendered: JSON.stringify([visible.trim(), entities]) };
  };
  const checkMarkup = (p: Params): string => {
    const markup = parseJsonParam(p.reply_markup);
    if (markup === undefined) return "";
    const keyboard = (markup as { inline_keyboard?: unknown } | null)?.inline_keyboard;
    if (!Array.isArray(keyboard) || !keyboard.every((row) => Array.isArray(row))) {
      throw new BotApiError(400, 'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup must be an Array');
    }
    const normal: [string, string, string][][] = [];
    for (const row of keyboard as unknown[][]) {
      const out: [string, string, string][] = [];
      for (const b of row as { text?: unknown; callback_data?: unknown; url?: unknown }[]) {
        if (typeof b?.text !== "string" || b.text.trim() === "")
          throw new BotApiError(400, "Bad Request: BUTTON_TEXT_INVALID");
        if (b.callback_data === undefined && b.url === undefined) {
          throw new BotApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard");
        }
        if (b.callback_data !== undefined) {
          const bytes = Buffer.byteLength(String(b.callback_data));
          if (typeof b.callback_data !== "string" || bytes < 1 || bytes > 64) {
            throw new BotApiError(400, "Bad Request: BUTTON_DATA_INVALID");
          }
        }
        out.push([b.text, String(b.callback_data ?? ""), String(b.url ?? "")]);
      }
      if (out.length > 0) normal.push(out);
    }
    // An empty keyboard is no keyboard; key order in the JSON does not matter to Telegram.
    return normal.length > 0 ? JSON.stringify(normal) : "";
  };
  /** Telegram's own refusals for a chat: flood control, a blocked bot, a chat that is gone. */
  const checkChat = (chatId: string): void => {
    const chat = chats.get(chatId);
    if (!chat) return;
    if (chat.floodUntil !== undefined && Date.now() < chat.floodUntil) {
      const retryAfter = Math.ceil((chat.floodUntil - Date.now()) / 1000);
      throw new BotApiError(429, `Too Many Requests: retry after ${retryAfter}`, { retry_after: retryAfter }, true);
    }
    if (chat.state === "blocked") throw new BotApiError(403, "Forbidden: bot was blocked by the user", undefined, true);
    if (chat.state === "missing") throw new BotApiError(400, "Bad Request: chat not found", undefined, true);
  };
  const message = (chatId: string, text: string, extra: Params = {}) => ({
    message_id: nextMessageId++,
    from: { id: botId, is_bot: true, first_name: "SKYNET", username: "skynet_bot" },
    chat: { id: Number(chatId), type: Number(chatId) < 0 ? "group" : "private" },
    date: Math.floor(Date.now() / 1000),
    ...(text ? { text } : {}),
    ...extra,
  });

  const methods: Record<string, (p: Params) => unknown | Promise<unknown>> = {
    getMe: () => ({
      id: botId,
      is_bot: true,
      first_name: "SKYNET",
      username: "skynet_bot",
      can_join_groups: true,
      can_read_all_group_messages: false,
      supports_inline_queries: false,
    }),
    sendMessage: (p) => {
      const chatId = String(requireParam(p, "chat_id"));
      checkChat(chatId);
      const text = checkText(p, "text", true);
      const markup = checkMarkup(p);
      const m = message(chatId, text.visible);
      messages.set(`${chatId}:${m.message_id}`, { chatId, messageId: m.message_id, rendered: text.rendered, markup });
      return m;
    },
    editMessageText: (p) => {
      const chatId = String(requireParam(p, "chat_id"));
      checkChat(chatId);
      const messageId = Number(requireParam(p, "message_id"));
      const text = checkText(p, "text", true);
      const markup = checkMarkup(p);
      const stored = messages.get(`${chatId}:${messageId}`);
      if (!stored) throw new BotApiError(400, "Bad Request: message to edit not found");
      if (stored.rendered === text.rendered && stored.markup === markup) {
        throw new BotApiError(
          400,
          "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        );
      }
      stored.rendered = text.rendered;
      stored.markup = markup;
      return { ...message(chatId, text.visible), message_id: messageId, edit_date: Math.floor(Date.now() / 1000) };
    },
    editMessageReplyMarkup: (p) => {
      const chatId = String(requireParam(p, "chat_id"));
      checkChat(chatId);
      const messageId = Number(requireParam(p, "message_id"));
      const stored = messages.get(`${chatId}:${messageId}`);
      if (!stored) throw new BotApiError(400, "Bad Request: message to edit not found");
      const markup = checkMarkup(p);
      if (stored.markup === markup) {
        throw new BotApiError(
          400,
          "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        );
      }
      stored.markup = markup;
      return { ...message(chatId, ""), message_id: messageId };
    },
    sendDocument: (p) => {
      const chatId = String(requireParam(p, "chat_id"));
      checkChat(chatId);
      const doc = requireParam(p, "document");
      checkText(p, "caption", false);
      if (typeof doc === "object" && doc && "size" in doc && (doc as { size: number }).size > 50 * 1024 * 1024) {
        throw new BotApiError(413, "Request Entity Too Large");
      }
      const name =
        typeof doc === "object" && doc && "filename" in doc ? String((doc as { filename: string }).filename) : "file";
      return message(chatId, "", {
        document: { file_id: `doc${nextMessageId}`, file_unique_id: "u", file_name: name },
      });
    },
    answerCallbackQuery: (p) => {
      const id = String(requireParam(p, "callback_query_id"));
      // Each callback query takes exactly one answer.
      if (answeredQueries.has(id)) {
        throw new BotApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid");
      }
      if (p.text !== undefined && String(p.text).length > 200)
        throw new BotApiError(400, "Bad Request: MESSAGE_TOO_LONG");
      answeredQueries.add(id);
      return true;
    },
    setMyCommands: (p) => {
      const commands = parseJsonParam(requireParam(p, "commands")) as { command: string; description: string }[];
      for (const c of commands) {
        if (!/^[a-z0-9_]{1,32}$/.test(c.command)) throw new BotApiError(400, "Bad Request: BOT_COMMAND_INVALID");
      }
      return true;
    },
    setWebhook: (p) => {
      requireParam(p, "url");
      return true;
    },
    deleteWebhook: () => true,
    sendChatAction: (p) => {
      checkChat(String(requireParam(p, "chat_id")));
      return true;
    },
    getUpdates: async (p) => {
      const offset = Number(p.offset ?? 0);
      const pending = () => updates.filter((u) => (u as { update_id: number }).update_id >= offset);
      // Long polling, shortened: wait a little for an update before answering empty.
      for (let i = 0; i < 10 && pending().length === 0 && Number(p.timeout ?? 0) > 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      return pending();
    },
  };

  let accessCerts: unknown = { keys: [] };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      void (async () => {
        const reply = (status: number, body: unknown) => {
          res.writeHead(status, { "Content-Type": "application/json" });
          res.end(JSON.stringify(body));
        };
        const url = new URL(req.url ?? "/", "http://localhost");
        if (url.pathname === "/__calls") {
          // ?since=<seq> and, so test files running side by side see only their own calls,
          // ?chats=<id,id> (calls to those chats) and ?cb=<prefix> (callback answers by query id).
          const since = Number(url.searchParams.get("since") ?? "0");
          const chats = url.searchParams.get("chats")?.split(",");
          const cb = url.searchParams.get("cb");
          const mine = (c: RecordedCall) =>
            (!chats && cb === null) ||
            (chats?.includes(String(c.params.chat_id)) ?? false) ||
            (cb !== null && String(c.params.callback_query_id ?? "").startsWith(cb));
          return reply(
            200,
            calls.slice(since).filter((c) => mine(c)),
          );
        }
        // A Cloudflare Access team's certs, for the web console's Access sign-in tests: the test
        // posts the public keys it generated, and the Worker fetches them as it would from Access.
        if (url.pathname === "/__access_certs" && req.method === "POST") {
          accessCerts = JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
          return reply(200, { ok: true });
        }
        if (url.pathname === "/cdn-cgi/access/certs") return reply(200, accessCerts);
        if (url.pathname === "/__reset") {
          calls.length = 0;
          failures.length = 0;
          chats.clear();
          return reply(200, { ok: true });
        }
        if (url.pathname === "/__chat" && req.method === "POST") {
          // {chatId, state?: "ok"|"blocked"|"missing", floodSeconds?: n}
          const c = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
            chatId: string | number;
            state?: ChatState["state"];
            floodSeconds?: number;
          };
          chats.set(String(c.chatId), {
            state: c.state ?? "ok",
            floodUntil: c.floodSeconds === undefined ? undefined : Date.now() + c.floodSeconds * 1000,
          });
          return reply(200, { ok: true });
        }
        if (url.pathname === "/__ack" && req.method === "POST") {
          // {seqs: [...]}: refusals the test has seen and accepts (or has already reported).
          const { seqs } = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { seqs: number[] };
          for (const seq of seqs) {
            const call = calls[seq];
            if (call && call.ok === false) call.expected = true;
          }
          return reply(200, { ok: true });
        }
        if (url.pathname === "/__fail" && req.method === "POST") {
          const f = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Partial<Failure>;
          failures.push({
            method: String(f.method),
            chatId: f.chatId === undefined ? undefined : String(f.chatId),
            errorCode: Number(f.errorCode ?? 429),
            description: String(f.description ?? "Too Many Requests: retry after 3"),
            retryAfter: f.retryAfter,
            times: Number(f.times ?? 1),
          });
          return reply(200, { ok: true });
        }
        if (url.pathname === "/__updates" && req.method === "POST") {
          const update = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
          updates.push({ ...update, update_id: nextUpdateId++ });
          return reply(200, { ok: true });
        }
        const m = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(url.pathname);
        if (!m) return reply(404, { ok: false, error_code: 404, description: "Not Found" });
        if (m[1] !== token) return reply(401, { ok: false, error_code: 401, description: "Unauthorized" });
        const method = m[2] ?? "";
        const handler = methods[method];
        if (!handler) return reply(404, { ok: false, error_code: 404, description: "Not Found: method not found" });
        let params: Params;
        try {
          params = { ...Object.fromEntries(url.searchParams), ...(await readParams(req, Buffer.concat(chunks))) };
        } catch (err) {
          return reply(400, { ok: false, error_code: 400, description: `Bad Request: ${(err as Error).message}` });
        }
        const record: RecordedCall = { seq: calls.length, method, params, at: Date.now() };
        calls.push(record);
        try {
          const failure = failures.find(
            (f) =>
              f.method === method && f.times > 0 && (f.chatId === undefined || f.chatId === String(params.chat_id)),
          );
          if (failure) {
            failure.times -= 1;
            throw new BotApiError(
              failure.errorCode,
              failure.description,
              failure.retryAfter === undefined ? undefined : { retry_after: failure.retryAfter },
              true,
            );
          }
          const result = await handler(params);
          record.ok = true;
          record.result = result;
          reply(200, { ok: true, result });
        } catch (err) {
          const e = err instanceof BotApiError ? err : new BotApiError(500, (err as Error).message);
          record.ok = false;
          record.error = e.message;
          if (e.arranged) record.expected = true;
          reply(e.code, {
            ok: false,
            error_code: e.code,
            description: e.message,
            ...(e.parameters ? { parameters: e.parameters } : {}),
          });
        }
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    calls,
    takeUnexpectedRefusals: (expected = []) => {
      const refused = calls.filter((c) => c.ok === false && !c.expected);
      for (const c of refused) c.expected = true;
      return refused.filter((c) => !expected.some((p) => p.test(c.error ?? "")));
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
