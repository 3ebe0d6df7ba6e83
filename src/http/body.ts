// Reads and validates a JSON request body: malformed JSON and schema errors become clear 400s.
import type { Context } from "hono";
import type { z } from "zod";
import { ApiError, parseOr400 } from "./errors.ts";

const MAX_JSON_BYTES = 256 * 1024;

export async function jsonBody<S extends z.ZodType>(c: Context, schema: S, allowEmpty = false): Promise<z.infer<S>> {
  // Refuse a declared oversize body before reading any of it.
  if (Number(c.req.header("Content-Length") ?? "0") > MAX_JSON_BYTES) {
    throw new ApiError("payload_too_large", `request body is over ${MAX_JSON_BYTES} bytes`);
  }
  const text = await c.req.text();
  if (text.length > MAX_JSON_BYTES)
    throw new ApiError("payload_too_large", `request body is over ${MAX_JSON_BYTES} bytes`);
  if (text.trim() === "" && allowEmpty) return parseOr400(schema, undefined, "request body");
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
