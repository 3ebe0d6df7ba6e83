// Reads and validates a JSON request body: a non-JSON Content-Type is a 415, malformed JSON and
// schema errors are clear 400s. The size is bounded by boundedBody() before the route runs.
import type { Context } from "hono";
import type { z } from "zod";
import { ApiError, parseOr400 } from "./errors.ts";
import { MAX_JSON_BYTES, requireJsonType } from "./limits.ts";

export async function jsonBody<S extends z.ZodType>(c: Context, schema: S, allowEmpty = false): Promise<z.infer<S>> {
  const text = await c.req.text();
  if (text.length > MAX_JSON_BYTES)
    throw new ApiError("payload_too_large", `request body is over ${MAX_JSON_BYTES} bytes`);
  // An empty body (a bare POST /cancel) needs no Content-Type; anything else must say JSON.
  if (text.trim() === "" && allowEmpty) return parseOr400(schema, undefined, "request body");
  requireJsonType(c.req.header("Content-Type"));
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ApiError("bad_request", "request body is not valid JSON");
  }
  return parseOr400(schema, value, "request body");
}

export function queryOf<S extends z.ZodType>(c: Context, schema: S): z.infer<S> {
  return parseOr400(schema, c.req.query(), "query");
}
