// The coding agent's approvals in the JSON API (bearer API_TOKEN, the deployment's owner): list
// the pending requests, and allow once or deny one. Same rules as the Telegram buttons: the first
// decision wins, a decided or expired request answers 409 and changes nothing.
import { Hono } from "hono";
import { z } from "zod";
import { PermissionDecisionSchema, PermissionIdSchema } from "../../protocol/index.ts";
import { apiAuth } from "../http/auth.ts";
import { ApiError } from "../http/errors.ts";
import { jsonInput, valid } from "../http/validate.ts";
import { decidePermission, pendingPermissions } from "./permissions.ts";

const DecideBodySchema = z.strictObject({ decision: PermissionDecisionSchema });
// Each route names its own guards (no mount-order dependence): the token first, then the input.
const auth = apiAuth();

export const permissionRoutes = new Hono<{ Bindings: Env }>()
  .get("/permissions", auth, async (c) => {
    const rows = await pendingPermissions(c.env);
    return c.json({
      permissions: rows.map((r) => ({
        id: r.id,
        jobId: r.jobId,
        tool: r.tool,
        kind: r.kind,
        target: r.target,
        preview: r.preview,
        expiresAt: new Date(r.expiresAt).toISOString(),
      })),
    });
  })
  .post(
    "/permissions/:id",
    auth,
    valid("param", z.object({ id: PermissionIdSchema }), "permission request id"),
    jsonInput(),
    valid("json", DecideBodySchema, "request body"),
    async (c) => {
      const { id } = c.req.valid("param");
      const { decision } = c.req.valid("json");
      const out = await decidePermission(c.env, id, "api", decision, true);
      if (!out.ok) {
        if (out.error.code === "unknown") throw new ApiError("not_found", `no permission request ${id}`);
        throw new ApiError(
          "conflict",
          out.error.code === "expired" ? "that request expired (denied)" : "that request was already decided",
        );
      }
      return c.json({ id, jobId: out.value.jobId, status: out.value.status });
    },
  );
