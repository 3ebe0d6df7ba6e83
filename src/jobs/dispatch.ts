// A QUEUED attempt on its way to an agent: handed to the execution engine once per attempt
// (a queue redelivery of it is dropped), offered again on request, and what the registry or
// the queue report back about it (no agent can take it; dispatch failed for good).
import { type ExecutionSpec, err, isTerminal, ok, type Result } from "../../protocol/index.ts";
import { getEngine } from "../execution/engine.ts";
import { randomHex } from "../lib/crypto.ts";
import { errorMessage, log } from "../lib/log.ts";
import type { DispatchOutcome } from "./job-api.ts";
import type { JobContext } from "./job-context.ts";
import type { JobState } from "./job-state.ts";
import { failEffects } from "./transitions.ts";

/** The attempt offered again and how, or why it cannot be (a sentence for the operator). */
export type Redelivery = Result<{ attempt: number; outcome: "offered" | "pending" | "enqueued" }, string>;

/** Why this dispatch message changes nothing (an old attempt, or one already handed over), or null. */
export function notDispatchable(state: JobState | undefined, attempt: number): "stale" | "duplicate" | null {
  if (state?.status !== "QUEUED" || attempt !== state.attempt || !state.spec) return "stale";
  return state.dispatchedAttempt >= attempt ? "duplicate" : null;
}

/**
 * Hands the current attempt to the engine with the token its offer carries (minted by the commit
 * that queued it: transitions.ts); the queue retries on a throw. The first accept under the
 * token takes the lease (agent-events.ts); a re-offer to another agent goes under a new one
 * (lease.ts reissueOfferToken).
 *
 * A successful hand-over writes nothing: its mark is staged, stored with the record's next
 * write (the agent's accept, usually) together with the dropping of the done "enqueue" item. A
 * restart before that write loses both, and the still-owed item hands the attempt over again:
 * the registry keeps an attempt it already has under the same token as it is (assignments.ts).
 */
export async function dispatchAttempt(
  job: JobContext,
  state: JobState | undefined,
  attempt: number,
): Promise<DispatchOutcome> {
  const refused = notDispatchable(state, attempt);
  if (refused || !state?.spec) return refused ?? "stale";
  if (!state.leaseToken) {
    // Queued by an older version (it minted the token here) or after a failed hand-over: the
    // token is stored before any offer carries it, or an accept under it would be refused.
    state.leaseToken = randomHex(24);
    job.commit(state);
  }
  const leaseToken = state.leaseToken;
  state.dispatchedAttempt = attempt;
  job.stage(state);
  try {
    return await getEngine(job.env).execute(state.spec, leaseToken);
  } catch (err) {
    // Let the queue retry this attempt: undo the mark so the redelivery is not dropped, and
    // retire the token: an offer the registry made before the failure must not be accepted.
    const again = job.load();
    if (again && again.status === "QUEUED" && again.attempt === attempt) {
      again.dispatchedAttempt = attempt - 1;
      again.leaseToken = randomHex(24);
      again.lease = null;
      job.commit(again);
    }
    throw err;
  }
}

/**
 * The attempt handed to the engine from the JobDO itself, right after it was queued; returns
 * what happened, for the job's counters. Never throws: a failure is undone by dispatchAttempt,
 * and the caller sends the queue message that delivers the attempt instead.
 */
export async function dispatchDirectly(job: JobContext, attempt: number): Promise<string> {
  const state = job.load();
  if (notDispatchable(state, attempt)) return "enqueue";
  try {
    return `enqueue_direct_${await dispatchAttempt(job, state, attempt)}`;
  } catch (err) {
    log("warn", "direct dispatch failed; the queue delivers it", {
      jobId: state?.id,
      attempt,
      error: errorMessage(err),
    });
    return "enqueue_direct_failed";
  }
}

/**
 * Operator nudge (and the Sentinel's): offers the current attempt again. A QUEUED attempt
 * already handed to the registry is re-offered there at once (agents' backoffs lifted, an
 * outstanding offer kept); one whose dispatch message never arrived is sent again.
 */
export async function redeliver(job: JobContext, state: JobState | undefined): Promise<Redelivery> {
  if (!state) return err("no such job");
  if (state.status !== "QUEUED") {
    const holder = state.status === "RUNNING" && state.lease ? ` on agent ${state.lease.agentId}` : "";
    return err(`the job is ${state.status}${holder}; only a QUEUED job can be offered again`);
  }
  if (state.dispatchedAttempt === state.attempt && state.leaseToken && state.spec) {
    const spec: ExecutionSpec = state.spec;
    const outcome = await getEngine(job.env).execute(spec, state.leaseToken);
    return ok({ attempt: state.attempt, outcome });
  }
  await job.env.DISPATCH_QUEUE.send({ jobId: state.id, attempt: state.attempt });
  return ok({ attempt: state.attempt, outcome: "enqueued" as const });
}

/** From the registry: why no connected agent can take this QUEUED attempt; true when it was new. */
export function noteWaiting(job: JobContext, state: JobState | undefined, attempt: number, text: string): boolean {
  if (state?.status !== "QUEUED" || state.attempt !== attempt || state.notice === text) return false;
  const effects = job.move(state, "waiting", { attempt, reason: text });
  state.notice = text;
  job.commit(state, effects);
  return true;
}

/** The queue gave up on this attempt: the job fails, audited; false when it was not current. */
export function deadLetter(job: JobContext, state: JobState | undefined, attempt: number, reason: string): boolean {
  if (!state || isTerminal(state.status) || attempt !== state.attempt) return false;
  job.commit(state, [
    ...failEffects(job, state, `dispatch failed after retries: ${reason}`),
    { kind: "audit", actor: "queue", action: "dead_letter", detail: { attempt, reason }, at: job.now() },
  ]);
  return true;
}
