// Orchestrator: the brain's front door (docs/design.md §3), used by the API, the gateway and the bot.
// Each job's JobDO does the work; this module creates jobs, routes decisions and waits.

import type { JobStatus, JobView } from "../../protocol/index.ts";
import { jobStub } from "../agents/registry-stub.ts";
import { loadConfig } from "../config.ts";
import { ApiError } from "../http/errors.ts";
import { takeTaskSlot } from "../http/rate-limit-do.ts";
import type { Actor, JobResult } from "../jobs/job-do.ts";
import { getDb, getJob } from "../ledger/store.ts";
import { newJobId } from "../lib/crypto.ts";
import type { FollowUpContext } from "../planners/follow-up.ts";

export interface CreateTaskInput {
  intent: string;
  projectId: string;
  userId: string;
  chatId?: string | null;
  messageId?: number | null;
  /** A job id chosen by the caller (idempotent intake); a new one otherwise. */
  jobId?: string;
  /** Telegram users are rate limited; the API token holder owns the deployment and is not. */
  rateLimited?: boolean;
  /** A Telegram follow-up's earlier job, for the planner (as data). */
  followUp?: FollowUpContext;
}

/** Creates the job; planning starts in its JobDO at once, outside this request. */
export async function createTask(env: Env, input: CreateTaskInput): Promise<JobView> {
  if (input.rateLimited) {
    const limit = loadConfig(env).taskRateLimitPerMinute;
    // A Durable Object counter per user, not a count of the user's jobs in D1.
    if (!(await takeTaskSlot(env, input.userId, limit))) {
      throw new ApiError("rate_limited", `slow down: at most ${limit} tasks a minute; try again shortly`);
    }
  }
  const jobId = input.jobId ?? newJobId();
  return jobStub(env, jobId).create({
    jobId,
    projectId: input.projectId,
    intent: input.intent,
    userId: input.userId,
    chatId: input.chatId ?? null,
    messageId: input.messageId ?? null,
    followUp: input.followUp ?? null,
  });
}

/** generatePlan (docs/design.md §3): plans the job now (normally its alarm does, right after createTask). */
export async function generatePlan(env: Env, jobId: string): Promise<JobView> {
  const job = await jobStub(env, jobId).planNow();
  if (!job) throw new ApiError("not_found", `no job ${jobId}`);
  return job;
}

export async function getStatus(env: Env, jobId: string): Promise<JobView> {
  const job = await jobStub(env, jobId).get();
  if (!job) {
    // A final job's live record is deleted after retention; its ledger row says so.
    const row = await getJob(getDb(env.DB), jobId);
    if (row) {
      throw new ApiError(
        "not_found",
        `job ${jobId} ended ${row.status} on ${new Date(row.updatedAt).toISOString()}; its live record was deleted after the retention period (its events and archived log may remain)`,
      );
    }
    throw new ApiError("not_found", `no job ${jobId}`);
  }
  return job;
}

function unwrap(res: JobResult): JobView {
  if (res.ok) return res.value;
  throw new ApiError(res.error.code, res.error.message);
}

export async function approvePlan(env: Env, jobId: string, actor: Actor): Promise<JobView> {
  return unwrap(await jobStub(env, jobId).approve(actor));
}

export async function denyPlan(env: Env, jobId: string, actor: Actor, reason?: string): Promise<JobView> {
  return unwrap(await jobStub(env, jobId).deny(actor, reason));
}

export async function cancelJob(env: Env, jobId: string, actor: Actor, reason?: string): Promise<JobView> {
  return unwrap(await jobStub(env, jobId).cancel(actor, reason));
}

/**
 * Waits until the job leaves `from` states or the timeout passes; returns the latest view. The
 * job's object answers at the commit that changes it. Should the object restart meanwhile (a
 * deploy, an eviction, a reset), the wait, being only a read, is asked again for the time left,
 * up to WAIT_RETRIES times in a row.
 */
export async function waitWhile(env: Env, jobId: string, from: JobStatus[], timeoutS: number): Promise<JobView> {
  const deadline = Date.now() + timeoutS * 1000;
  for (let failures = 0; ; ) {
    let job: JobView | null;
    try {
      job = await jobStub(env, jobId).waitWhile(from, deadline - Date.now());
      failures = 0;
    } catch (err) {
      if (++failures > WAIT_RETRIES || Date.now() >= deadline) throw err;
      await new Promise((r) => setTimeout(r, 50 * 2 ** failures));
      continue;
    }
    if (!job) return getStatus(env, jobId); // no live record: says why (purged, or no such job)
    if (!from.includes(job.status) || Date.now() >= deadline) return job;
  }
}

/** How many failed wait calls in a row a wait survives (the object restarting under it). */
const WAIT_RETRIES = 3;

/** waitForApproval (docs/design.md §3): true once approved (queued or beyond), false if denied or timed out. */
export async function waitForApproval(
  env: Env,
  jobId: string,
  timeoutS: number,
): Promise<{ approved: boolean; job: JobView }> {
  const job = await waitWhile(env, jobId, ["CREATED", "PLANNED"], timeoutS);
  return { approved: job.decidedBy !== null && job.status !== "CANCELLED", job };
}
