// The gateway endpoints (docs/design.md §6): submit a ready execution spec, read status, cancel.
// The API token holder submits the spec, so it counts as approved by them (ADMIN ones audited).
import { Hono } from "hono";
import { z } from "zod";
import { GatewayExecuteRequestSchema, JobIdSchema, type JobView } from "../../protocol/index.ts";
import { jobStub } from "../agents/registry-stub.ts";
import { cancelJob, getStatus } from "../core/orchestrator.ts";
import { validateExecutionSpec } from "../core/policy.ts";
import { apiAuth } from "../http/auth.ts";
import { ApiError } from "../http/errors.ts";
import { idempotencyKeyOf, idempotentCreate } from "../http/idempotency.ts";
import { jsonInput, valid } from "../http/validate.ts";

// Mounted at "/": each route carries its own token check, so no path outside these three needs one.
const auth = apiAuth();
const jobParam = valid("param", z.object({ jobId: JobIdSchema }), "job id");

export const gatewayRoutes = new Hono<{ Bindings: Env }>()
  .post("/execute", auth, jsonInput(), valid("json", GatewayExecuteRequestSchema, "request body"), async (c) => {
    const { executionSpec: spec } = c.req.valid("json");
    const checked = validateExecutionSpec(spec);
    if (!checked.ok) throw new ApiError("bad_request", `execution spec refused: ${checked.error}`);
    const create = async (): Promise<JobView> => {
      const res = await jobStub(c.env, spec.jobId).createFromSpec(spec, { id: "api", isAdmin: true });
      if (!res.ok) throw new ApiError(res.error.code, res.error.message);
      return res.value;
    };
    const key = idempotencyKeyOf(c);
    if (!key) return c.json({ status: "accepted", jobId: spec.jobId, job: await create() }, 202);
    const { job, replayed } = await idempotentCreate(c.env, {
      scope: "api",
      key,
      request: { route: "POST /execute", spec },
      newJobId: spec.jobId,
      find: (id) => jobStub(c.env, id).get(),
      create,
    });
    return c.json({ status: "accepted", jobId: job.id, job, replayed }, replayed ? 200 : 202);
  })
  .get("/status/:jobId", auth, jobParam, async (c) => {
    const job = await getStatus(c.env, c.req.valid("param").jobId);
    const failed = job.steps.find((s) => s.state === "failed");
    const last = [...job.steps].reverse().find((s) => s.exitCode !== null);
    return c.json({
      jobId: job.id,
      status: job.status.toLowerCase(),
      logs: job.logTail,
      exitCode: (failed ?? last)?.exitCode ?? null,
      error: job.error,
    });
  })
  .post("/cancel/:jobId", auth, jobParam, async (c) => {
    const id = c.req.valid("param").jobId;
    const job = await cancelJob(c.env, id, { id: "api", isAdmin: true }, "cancelled through the gateway");
    return c.json({ status: job.status.toLowerCase(), jobId: job.id });
  });
