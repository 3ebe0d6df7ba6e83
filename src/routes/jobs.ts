// JSON API for tasks and jobs (bearer API_TOKEN): create, list, detail, decisions, wait, logs.
import { Hono } from "hono";
import { z } from "zod";
import {
  CreateTaskRequestSchema,
  DecisionRequestSchema,
  JobIdSchema,
  JobListQuerySchema,
  type JobView,
  LogQuerySchema,
  WaitQuerySchema,
} from "../../protocol/index.ts";
import { jobStub } from "../agents/registry-stub.ts";
import {
  approvePlan,
  cancelJob,
  createTask,
  denyPlan,
  getStatus,
  waitForApproval,
  waitWhile,
} from "../core/orchestrator.ts";
import { apiAuth } from "../http/auth.ts";
import { ApiError } from "../http/errors.ts";
import { idempotencyKeyOf, idempotentCreate } from "../http/idempotency.ts";
import { jsonInput, valid } from "../http/validate.ts";
import type { Actor } from "../jobs/job-do.ts";
import { getDb, LedgerInputError, listJobEvents, listJobs } from "../ledger/store.ts";
import { newJobId } from "../lib/crypto.ts";
import { reviewJob } from "../lib/step-review.ts";

// Whoever holds the API token is the owner of the deployment.
const API_ACTOR: Actor = { id: "api", isAdmin: true };

// Each route names its own guards: an unknown path is a 404 whether or not it carries a token.
const auth = apiAuth();
const jobParam = valid("param", z.object({ id: JobIdSchema }), "job id");
const decision = [jsonInput({ allowEmpty: true }), valid("json", DecisionRequestSchema, "request body")] as const;

/** A job view with every step's action and params spelled out (what approving would run). */
const withReview = (job: JobView): JobView => ({ ...job, review: reviewJob(job) ?? undefined });

export const jobRoutes = new Hono<{ Bindings: Env }>()
  .post("/tasks", auth, jsonInput(), valid("json", CreateTaskRequestSchema, "request body"), async (c) => {
    const body = c.req.valid("json");
    const key = idempotencyKeyOf(c);
    const create = (jobId?: string) =>
      createTask(c.env, { intent: body.intent, projectId: body.projectId, userId: "api", jobId });
    if (!key) {
      const job = await create();
      return c.json({ jobId: job.id, status: job.status, job }, 202);
    }
    const { job, replayed } = await idempotentCreate(c.env, {
      scope: API_ACTOR.id,
      key,
      request: { route: "POST /api/tasks", body },
      newJobId: newJobId(),
      find: (id) => jobStub(c.env, id).get(),
      create,
    });
    return c.json({ jobId: job.id, status: job.status, job, replayed }, replayed ? 200 : 202);
  })
  .get("/jobs", auth, valid("query", JobListQuerySchema, "query"), async (c) => {
    const q = c.req.valid("query");
    try {
      const page = await listJobs(getDb(c.env.DB), { status: q.status, limit: q.limit, cursor: q.cursor });
      return c.json({
        jobs: page.jobs.map((j) => ({
          id: j.id,
          projectId: j.projectId,
          status: j.status,
          intent: j.intent,
          risk: j.risk,
          createdAt: new Date(j.createdAt).toISOString(),
          updatedAt: new Date(j.updatedAt).toISOString(),
        })),
        nextCursor: page.nextCursor,
      });
    } catch (err) {
      if (err instanceof LedgerInputError) throw new ApiError("bad_request", err.message);
      throw err;
    }
  })
  .get("/jobs/:id", auth, jobParam, async (c) => c.json(withReview(await getStatus(c.env, c.req.valid("param").id))))
  .post("/jobs/:id/approve", auth, jobParam, async (c) =>
    c.json(withReview(await approvePlan(c.env, c.req.valid("param").id, API_ACTOR))),
  )
  .post("/jobs/:id/deny", auth, jobParam, ...decision, async (c) => {
    const id = c.req.valid("param").id;
    const body = c.req.valid("json");
    return c.json(withReview(await denyPlan(c.env, id, API_ACTOR, body.reason)));
  })
  .post("/jobs/:id/cancel", auth, jobParam, ...decision, async (c) => {
    const id = c.req.valid("param").id;
    const body = c.req.valid("json");
    return c.json(withReview(await cancelJob(c.env, id, API_ACTOR, body.reason)));
  })
  .get("/jobs/:id/events", auth, jobParam, async (c) => {
    const id = c.req.valid("param").id;
    const events = await listJobEvents(getDb(c.env.DB), id);
    if (events.length === 0 && !(await jobStub(c.env, id).get())) throw new ApiError("not_found", `no job ${id}`);
    return c.json({
      jobId: id,
      events: events.map((e) => ({
        seq: e.seq,
        from: e.fromStatus,
        to: e.toStatus,
        event: e.event,
        detail: e.detail ? (JSON.parse(e.detail) as unknown) : null,
        at: new Date(e.at).toISOString(),
      })),
    });
  })
  .post("/jobs/:id/redispatch", auth, jobParam, async (c) => {
    const id = c.req.valid("param").id;
    if (!(await jobStub(c.env, id).get())) throw new ApiError("not_found", `no job ${id}`);
    const res = await jobStub(c.env, id).redeliver();
    if (!res.ok) throw new ApiError("conflict", res.error);
    return c.json({ jobId: id, attempt: res.value.attempt, redelivered: true }, 202);
  })
  .post("/jobs/:id/outbox/replay", auth, jobParam, async (c) => {
    // Behind the API token, i.e. the deployment's owner (API_ACTOR).
    const id = c.req.valid("param").id;
    const res = await jobStub(c.env, id).replayOutbox();
    if (!res) throw new ApiError("not_found", `no job ${id}`);
    return c.json({ jobId: id, replayed: res.replayed }, 200);
  })
  .get("/jobs/:id/wait-approval", auth, jobParam, valid("query", WaitQuerySchema, "query"), async (c) => {
    const id = c.req.valid("param").id;
    const { timeoutS, while: during } = c.req.valid("query");
    if (during)
      throw new ApiError(
        "bad_request",
        "query: `while` goes with /wait; /wait-approval waits while the plan is undecided",
      );
    const res = await waitForApproval(c.env, id, timeoutS);
    return c.json({ ...res, job: withReview(res.job) });
  })
  .get("/jobs/:id/wait", auth, jobParam, valid("query", WaitQuerySchema, "query"), async (c) => {
    const id = c.req.valid("param").id;
    const { timeoutS, while: during } = c.req.valid("query");
    return c.json(
      withReview(await waitWhile(c.env, id, during ?? ["CREATED", "PLANNED", "QUEUED", "RUNNING"], timeoutS)),
    );
  })
  .get("/jobs/:id/logs", auth, jobParam, valid("query", LogQuerySchema, "query"), async (c) => {
    const id = c.req.valid("param").id;
    const q = c.req.valid("query");
    const logs = await jobStub(c.env, id).readLogs({ tail: q.tail, grep: q.grep });
    if (!logs) throw new ApiError("not_found", `no job ${id}`);
    return c.json({ jobId: id, status: logs.status, lines: logs.lines });
  });
