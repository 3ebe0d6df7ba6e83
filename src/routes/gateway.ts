// The seed's gateway endpoints (§6.4): submit a ready execution spec, read status, cancel.
// The API token holder submits the spec, so it counts as approved by them (ADMIN ones audited).
import { Hono } from "hono";
import { GatewayExecuteRequestSchema, JobIdSchema } from "../../protocol/index.ts";
import { jobStub } from "../agents/registry-stub.ts";
import { cancelJob, getStatus } from "../core/orchestrator.ts";
import { validateExecutionSpec } from "../core/policy.ts";
import { apiAuth } from "../http/auth.ts";
import { jsonBody } from "../http/body.ts";
import { ApiError, parseOr400 } from "../http/errors.ts";

export const gatewayRoutes = new Hono<{ Bindings: Env }>()
  .use(apiAuth())
  .post("/execute", async (c) => {
    const { executionSpec: spec } = await jsonBody(c, GatewayExecuteRequestSchema);
    const checked = validateExecutionSpec(spec);
    if (!checked.ok) throw new ApiError("bad_request", `execution spec refused: ${checked.error}`);
    const res = await jobStub(c.env, spec.jobId).createFromSpec(spec, { id: "api", isAdmin: true });
    if (!res.ok) throw new ApiError(res.code, res.message);
    return c.json({ status: "accepted", jobId: spec.jobId, job: res.job }, 202);
  })
  .get("/status/:jobId", async (c) => {
    const job = await getStatus(c.env, parseOr400(JobIdSchema, c.req.param("jobId"), "job id"));
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
  .post("/cancel/:jobId", async (c) => {
    const id = parseOr400(JobIdSchema, c.req.param("jobId"), "job id");
    const job = await cancelJob(c.env, id, { id: "api", isAdmin: true }, "cancelled through the gateway");
    return c.json({ status: job.status.toLowerCase(), jobId: job.id });
  });
