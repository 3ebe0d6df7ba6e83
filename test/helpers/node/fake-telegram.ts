// A local server speaking the Telegram Bot API (https://core.telegram.org/bots/api) as strictly
// as Telegram does for the methods SKYNET uses: JSON, urlencoded and multipart bodies, required
// parameters, HTML parse mode with Telegram's tag set and entity rules, the 4096-character limit,
// "message is not modified", callback query answers. It records every call for assertions
// (GET /__calls, POST /__reset), can hand updates to a long-polling client (POST /__updates) and
// can be told to refuse the next calls of a method (POST /__fail, e.g. a 429 with retry_after).
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
}

type Params = Record<string, unknown>;
interface StoredMessage {
  chatId: string;
  messageId: number;
  text: string;
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

/** Parses Telegram HTML the way the Bot API does; returns the visible text or an error. */
export function parseTelegramHtml(html: string): { ok: true; text: string } | { ok: false; error: string } {
  const stack: string[] = [];
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
        if (stack.pop() !== name) {
          return { ok: false, error: `Can't parse entities: can't find end tag corresponding to start tag "${name}"` };
        }
      } else {
        if (name === "a" && !/\bhref\s*=\s*"[^"]*"/.test(raw)) {
          return { ok: false, error: "Can't parse entities: href attribute is missing" };
        }
        stack.push(name);
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
  if (stack.length > 0) return { ok: false, error: `Can't parse entities: can't find end tag for "${stack.at(-1)}"` };
  return { ok: true, text };
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
  constructor(code: number, description: string, parameters?: Params) {
    super(description);
    this.code = code;
    this.parameters = parameters;
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
  close(): Promise<void>;
}

export async function startFakeTelegram(opts: { port?: number; token?: string } = {}): Promise<FakeTelegram> {
  const token = opts.token ?? "123456:TEST-TOKEN";
  const botId = Number(token.split(":")[0]);
  const calls: RecordedCall[] = [];
  const messages = new Map<string, StoredMessage>();
  const updates: unknown[] = [];
  const failures: Failure[] = [];
  let nextMessageId = 1000;
  let nextUpdateId = 1;

  const requireParam = (p: Params, name: string): unknown => {
    if (p[name] === undefined || p[name] === "") throw new BotApiError(400, `Bad Request: ${name} is empty`);
    return p[name];
  };
  const checkText = (p: Params, field: "text" | "caption", required: boolean): string => {
    const raw = p[field];
    if (raw === undefined || raw === "") {
      if (required) throw new BotApiError(400, "Bad Request: message text is empty");
      return "";
    }
    const html = String(raw);
    let visible = html;
    if (p.parse_mode !== undefined) {
      if (p.parse_mode !== "HTML")
        throw new BotApiError(400, `Bad Request: unsupported parse_mode ${String(p.parse_mode)}`);
      const parsed = parseTelegramHtml(html);
      if (!parsed.ok) throw new BotApiError(400, `Bad Request: ${parsed.error}`);
      visible = parsed.text;
    }
    const limit = field === "text" ? 4096 : 1024;
    if (visible.trim() === "" && required) throw new BotApiError(400, "Bad Request: message text is empty");
    if (visible.length > limit) {
      throw new BotApiError(
        400,
        field === "text" ? "Bad Request: message is too long" : "Bad Request: message caption is too long",
      );
    }
    return visible;
  };
  const checkMarkup = (p: Params): string => {
    const markup = parseJsonParam(p.reply_markup) as
      | { inline_keyboard?: { text: string; callback_data?: string }[][] }
      | undefined;
    if (!markup) return "";
    for (const row of markup.inline_keyboard ?? []) {
      for (const b of row) {
        if (!b.text) throw new BotApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard");
        if (b.callback_data !== undefined && (Buffer.byteLength(b.callback_data) > 64 || b.callback_data === "")) {
          throw new BotApiError(400, "Bad Request: BUTTON_DATA_INVALID");
        }
      }
    }
    return JSON.stringify(markup);
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
      const text = checkText(p, "text", true);
      const markup = checkMarkup(p);
      const m = message(chatId, text);
      messages.set(`${chatId}:${m.message_id}`, { chatId, messageId: m.message_id, text: String(p.text), markup });
      return m;
    },
    editMessageText: (p) => {
      const chatId = String(requireParam(p, "chat_id"));
      const messageId = Number(requireParam(p, "message_id"));
      const text = checkText(p, "text", true);
      const markup = checkMarkup(p);
      const stored = messages.get(`${chatId}:${messageId}`);
      if (!stored) throw new BotApiError(400, "Bad Request: message to edit not found");
      if (stored.text === String(p.text) && stored.markup === markup) {
        throw new BotApiError(
          400,
          "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        );
      }
      stored.text = String(p.text);
      stored.markup = markup;
      return { ...message(chatId, text), message_id: messageId, edit_date: Math.floor(Date.now() / 1000) };
    },
    editMessageReplyMarkup: (p) => {
      const chatId = String(requireParam(p, "chat_id"));
      const messageId = Number(requireParam(p, "message_id"));
      const stored = messages.get(`${chatId}:${messageId}`);
      if (!stored) throw new BotApiError(400, "Bad Request: message to edit not found");
      stored.markup = checkMarkup(p);
      return { ...message(chatId, ""), message_id: messageId };
    },
    sendDocument: (p) => {
      const chatId = String(requireParam(p, "chat_id"));
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
      requireParam(p, "callback_query_id");
      if (p.text !== undefined && String(p.text).length > 200)
        throw new BotApiError(400, "Bad Request: MESSAGE_TOO_LONG");
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
      requireParam(p, "chat_id");
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
        if (url.pathname === "/__reset") {
          calls.length = 0;
          failures.length = 0;
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
            );
          }
          const result = await handler(params);
          record.ok = true;
          reply(200, { ok: true, result });
        } catch (err) {
          const e = err instanceof BotApiError ? err : new BotApiError(500, (err as Error).message);
          record.ok = false;
          record.error = e.message;
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
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
