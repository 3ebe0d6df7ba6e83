// The lease outside the agent's job frames (agent-events.ts, where the first accept under the
// attempt's token takes it): the token reissued before a re-offer, heartbeats and resumes from
// the holder, its socket closing, its coming back without the job, and the check of an upload.
// Renewals save only the lease's liveness (saveLiveness) unless the job's status changes.
import { isTerminal } from "../../protocol/index.ts";
import { ok, type Result } from "../../protocol/result.ts";
import { randomHex } from "../lib/crypto.ts";
import { type FenceRefusal, leaseEnded, refused } from "./job-api.ts";
import type { JobContext } from "./job-context.ts";
import type { JobState } from "./job-state.ts";
import { reachableAgain } from "./unreachable.ts";

/** Heartbeat or resume from the lease holder: extends the lease; anything else is stale. */
export function renewLease(
  job: JobContext,
  state: JobState,
  agentId: string,
  attempt: number,
  leaseToken: string,
): Result<"saved" | "committed", FenceRefusal> {
  if (isTerminal(state.status)) return leaseEnded(state);
  const lease = state.lease;
  if (!lease || lease.attempt !== attempt || lease.leaseToken !== leaseToken || lease.agentId !== agentId) {
    return refused("stale_lease", `attempt ${attempt} of ${state.id} is not leased to this agent`);
  }
  const now = job.now();
  lease.expiresAt = now + job.config.leaseS * 1000;
  lease.lastSeenAt = now;
  if (!state.unreachableSince) {
    job.saveLiveness({ lease });
    return ok("saved");
  }
  job.commit(state, reachableAgain(job, state));
  return ok("committed");
}

/**
 * The holder of this unreachable job is connected again and does not list it (it restarted):
 * unless its result is replayed within WITHOUT_JOB_CONFIRM_MS, the outcome is unknown then
 * rather than after the whole unreachable bound. True when it was noted.
 */
export function holderWithoutJob(job: JobContext, s: JobState, agentId: string, attempt: number): boolean {
  if (s.status !== "RUNNING" || !s.unreachableSince || s.withoutJobAt) return false;
  if (s.lease?.agentId !== agentId || s.lease.attempt !== attempt) return false;
  job.saveLiveness({ withoutJobAt: job.now() });
  return true;
}

/** The lease holder's socket closed: it gets the reconnect grace instead of the full lease. */
export function holderDisconnected(job: JobContext, s: JobState, agentId: string, attempt: number): boolean {
  const lease = s.lease;
  if (!lease || lease.agentId !== agentId || lease.attempt !== attempt) return false;
  lease.expiresAt = Math.min(lease.expiresAt, job.now() + job.config.reconnectGraceS * 1000);
  job.saveLiveness({ lease });
  return true;
}

/** Sentinel: the holder is OFFLINE, so its lease is over now (the alarm's check acts on it). */
export function holderOffline(job: JobContext, s: JobState, offlineAgents: string[]): void {
  if (s.status !== "RUNNING" || !s.lease || !offlineAgents.includes(s.lease.agentId)) return;
  s.lease.expiresAt = Math.min(s.lease.expiresAt, job.now());
  job.saveLiveness({ lease: s.lease });
}

/** For an artifact upload: "ended" once the job is final, whoever asks. */
export function leaseHeld(
  s: JobState | undefined,
  attempt: number,
  leaseToken: string,
  agentId: string,
): boolean | "ended" {
  if (s && isTerminal(s.status)) return "ended";
  const lease = s?.lease;
  return !!lease && lease.attempt === attempt && lease.leaseToken === leaseToken && lease.agentId === agentId;
}

/**
 * What the registry gets when it asks for the attempt's token again (an offer under the old one
 * ended, or it lost track of it): a fresh token no agent has seen yet; or the agent that already
 * holds the attempt (its accept won); or why the attempt is not waiting for an agent at all.
 */
export type Reissue =
  | { kind: "fresh"; leaseToken: string }
  | { kind: "held"; agentId: string; leaseToken: string }
  | { kind: "gone"; reason: string };

/**
 * The offers of this QUEUED attempt went under `state.leaseToken`, minted by the commit that
 * queued it (transitions.ts); the first accept under it takes the lease (agent-events.ts). Before
 * the registry offers the attempt to another agent it asks here for a new token, so every token
 * an agent was ever offered is dead from then on: an attempt never runs on two agents, however
 * late an earlier offer's accept comes. An accepted attempt is left alone (its holder is named).
 */
export function reissueOfferToken(job: JobContext, state: JobState, attempt: number): Reissue {
  if (isTerminal(state.status) || state.attempt !== attempt) {
    return { kind: "gone", reason: `attempt ${attempt} of ${state.id} is not current (${state.status})` };
  }
  if (state.status === "RUNNING" && state.lease?.attempt === attempt) {
    return { kind: "held", agentId: state.lease.agentId, leaseToken: state.lease.leaseToken };
  }
  // (Not the hand-over's mark: it is stored lazily, and only the registry, which got the
  // attempt, asks.)
  if (state.status !== "QUEUED" || !state.leaseToken) {
    return { kind: "gone", reason: `attempt ${attempt} of ${state.id} is not waiting for an agent (${state.status})` };
  }
  state.lease = null;
  state.leaseToken = randomHex(24);
  job.commit(state);
  return { kind: "fresh", leaseToken: state.leaseToken };
}
