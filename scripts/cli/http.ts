// The CLI's HTTP client: the Worker's typed client (hc<AppType>: paths, params, queries and bodies
// checked against the routes at compile time), answers validated with the protocol's schemas at
// run time (the server may be another version), and errors that say what to do (start the
// server, fix the token and where it came from).
import { hc } from "hono/client";
import type { z } from "zod";
import { ErrorBodySchema } from "../../protocol/index.ts";
import type { AppType } from "../../src/app.ts";
import { type Connection, checkUrl } from "./config.ts";
import { ServerError, UsageError } from "./errors.ts";

const clientFor = (base: string, fetch: typeof globalThis.fetch) => hc<AppType>(base, { fetch });

export class Api {
  readonly base: string;
  private readonly conn: Connection;
  /** The typed client: `api.client.api.jobs[":id"].$get({ param: { id } })`; errors as fetch() throws them. */
  readonly client: ReturnType<typeof clientFor>;

  constructor(conn: Connection) {
    this.conn = conn;
    this.base = checkUrl(conn.url);
    this.client = clientFor(this.base, (input, init) => this.send(input, init));
  }

  /** A typed client's answer, validated by `schema` (a 2xx whose body does not fit is a server error). */
  async read<T extends z.ZodType>(
    schema: T,
    pending: Promise<{ url: string; json(): Promise<unknown> }>,
  ): Promise<z.infer<T>> {
    const res = await pending;
    const body: unknown = await res.json().catch(() => undefined);
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      throw new ServerError(`unexpected answer from ${res.url}: ${parsed.error.issues[0]?.message}`);
    }
    return parsed.data;
  }

  private authorization(): string {
    if (!this.conn.token) {
      throw new UsageError(
        'no API token: set SKYNET_API_TOKEN, put {"token": …} in the config file, or run `npm run dev` once in this directory to create .dev.vars',
      );
    }
    return `Bearer ${this.conn.token.value}`;
  }

  /** A raw request; non-2xx answers become errors that say what to fix. */
  async fetch(path: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> {
    const { json, ...rest } = init;
    const headers = new Headers(rest.headers);
    if (json !== undefined) headers.set("Content-Type", "application/json");
    return this.send(`${this.base}${path}`, {
      ...rest,
      headers,
      ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
    });
  }

  /** Every request, the typed client's too: the token added, failures turned into errors that say what to fix. */
  private async send(input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set("Authorization", this.authorization());
    let res: Response;
    try {
      res = await fetch(input, { ...init, headers });
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
        401,
      );
    }
    if (res.status === 400) throw new UsageError(`${res.status}: ${message}`);
    throw new ServerError(`${res.status}: ${message}`, res.status);
  }
}
