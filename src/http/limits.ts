// Request bodies bounded while they are read (Hono's bodyLimit counts a chunked body's bytes as
// they arrive, so a missing or false Content-Length does not help), and JSON-only routes.
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { ApiError } from "./errors.ts";

export const MAX_JSON_BYTES = 256 * 1024;
export const MAX_UPDATE_BYTES = 1024 * 1024;

export function boundedBody(maxSize: number, what = "request body"): MiddlewareHandler {
  return bodyLimit({
    maxSize,
    onError: () => {
      throw new ApiError("payload_too_large", `${what} is over ${maxSize} bytes`);
    },
  });
}

/** application/json, with or without parameters (charset); also the +json family. */
export function isJsonType(header: string | undefined): boolean {
  const type = (header ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  return type === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(type);
}

export function requireJsonType(header: string | undefined): void {
  if (!isJsonType(header)) {
    throw new ApiError(
      "unsupported_media_type",
      `send the body as JSON with Content-Type: application/json (got ${header ? JSON.stringify(header.slice(0, 100)) : "none"})`,
    );
  }
}
