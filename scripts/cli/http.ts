// The CLI's HTTP client: bearer token, JSON bodies validated with the protocol's schemas, and
// errors that say what to do (start the server, fix the token and where it came from).
import type { z } from "zod";
import { ErrorBodySchema } from "../../protocol/index.ts";
import { type Connection, checkUrl } from "./config.ts";
import { ServerError, UsageError } from "./errors.ts";

export class Api {
  readonly base: string;
  private readonly conn: Connection;

  constructor(conn: Connection) {
    this.conn = conn;
    this.base = checkUrl(conn.url);
  }

  private headers(json: boolean): Record<string, string> {
    if (!this.conn.token) {
      throw new UsageError(
        'no API token: set SKYNET_API_TOKEN, put {"token": …} in the config file, or run `npm run dev` once in this directory to create .dev.vars',
      );
    }
    return {
      Authorization: `Bearer ${this.conn.token.value}`,
      ...(json ? { "Content-Type": "application/json" } : {}),
    };
  }

  /** A raw request; non-2xx answers become errors that say what to fix. */
  async fetch(path: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> {
    const { json, ...rest } = init;
    const headers = this.headers(json !== undefined);
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        ...rest,
        headers,
        ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
      });
    } catch (err) {
      const why = err instanceof Error && err.cause instanceof Error ? ` (${err.cause.message})` : "";
      throw new ServerError(
        `cannot reach ${this.base} (from ${this.conn.url.source})${why}: is \`npm run dev\` running? Another port: --url or SKYNET_URL`,
      );
    }
    if (res.ok) return res;
    const body: unknown = await res.json().catch(() => null);
    const err = ErrorBodySchema.safeParse(body);
    const message = err.success ? err.data.error.message : `${res.statusText || "request failed"}`;
    if (res.status === 401) {
      throw new ServerError(
        `the server refused the API token from ${this.conn.token?.source} (401: ${message}); it must equal the server's API_TOKEN (.dev.vars locally, \`wrangler secret put API_TOKEN\` when deployed)`,
      );
    }
    if (res.status === 400) throw new UsageError(`${res.status}: ${message}`);
    throw new ServerError(`${res.status}: ${message}`);
  }

  async json<T extends z.ZodType>(
    schema: T,
    path: string,
    init: RequestInit & { json?: unknown } = {},
  ): Promise<z.infer<T>> {
    const res = await this.fetch(path, init);
    const body: unknown = await res.json().catch(() => undefined);
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      throw new ServerError(`unexpected answer from ${this.base}${path}: ${parsed.error.issues[0]?.message}`);
    }
    return parsed.data;
  }
}
