// Request validation as route middleware: the JSON body's size and type (jsonInput), then its
// shape, the path's parameters and the query with @hono/zod-validator (valid). A refusal is the
// API's usual error body ({error:{code,message}}: 400, 413 or 415) and the handler never runs.
import { zValidator } from "@hono/zod-validator";
import type { MiddlewareHandler, ValidationTargets } from "hono";
import type { z } from "zod";
import { ApiError } from "./errors.ts";
import { boundedBody, MAX_JSON_BYTES, requireJsonType } from "./limits.ts";

type Issue = { path: readonly PropertyKey[]; message: string };

function describe(target: keyof ValidationTargets, issues: readonly Issue[]): string {
  return issues
    .slice(0, 5)
    .map((i) => (i.path.length && target !== "param" ? `${i.path.map(String).join(".")}: ${i.message}` : i.message))
    .join("; ");
}

/** Validates one part of the request with a zod schema; `what` names it in the 400's message. */
export const valid = <T extends z.ZodType, Target extends keyof ValidationTargets>(
  target: Target,
  schema: T,
  what: string,
) =>
  zValidator(target, schema, (result) => {
    if (!result.success) throw new ApiError("bad_request", `invalid ${what}: ${describe(target, result.error.issues)}`);
  });

/**
 * A JSON body at most `maxSize` bytes (counted while it streams in), sent as JSON: anything else
 * is a 413 or 415. With `allowEmpty`, an empty body (a bare POST …/cancel) needs no Content-Type:
 * the validator then sees `{}` (it reads only JSON-typed bodies).
 */
export function jsonInput(opts: { allowEmpty?: boolean; maxSize?: number } = {}): MiddlewareHandler<{
  Bindings: Env;
}> {
  const limit = boundedBody(opts.maxSize ?? MAX_JSON_BYTES);
  return (c, next) =>
    limit(c, async () => {
      const empty = opts.allowEmpty && (await c.req.text()).trim() === "";
      if (!empty) requireJsonType(c.req.header("Content-Type"));
      await next();
    });
}
