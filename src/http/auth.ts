// Bearer-token middleware for the JSON API (API_TOKEN), compared in constant time.
import type { MiddlewareHandler } from "hono";
import { loadConfig } from "../config.ts";
import { timingSafeEqual } from "../lib/crypto.ts";
import { ApiError } from "./errors.ts";

export function bearerToken(header: string | undefined): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return m?.[1] ?? null;
}

export function apiAuth(): MiddlewareHandler<{ Bindings: Env }> {
  return async function apiAuth(c, next) {
    const expected = loadConfig(c.env).apiToken;
    if (!expected) throw new ApiError("unavailable", "API_TOKEN is not configured on this deployment");
    const token = bearerToken(c.req.header("Authorization"));
    if (!token || !timingSafeEqual(token, expected)) {
      throw new ApiError("unauthorized", "missing or invalid bearer token (Authorization: Bearer <API_TOKEN>)");
    }
    await next();
  };
}
