// The lease outside the agent's job frames (agent-events.ts): granted with the offer and taken
// back when the offer fails, heartbeats and resumes from the holder, its socket closing, its
// coming back without the job, and the check of an upload.
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

/** The lease an offer carries: granted before the registry sends the offer, confirmed by the accept. */
export interface OfferedLease {
  leaseToken: string;
  expiresAt: number;
}

/**
 * The registry is about to offer this QUEUED attempt to `agentId`: the lease is granted now,
 * under a fresh token, so the offer carries it and the agent's first frames are already fenced.
 * The job stays QUEUED until the accept confirms it (the ledger's RUNNING means an agent took
 * it). A lease still held for an earlier offer is replaced: the registry alone assigns, and its
 * new offer means the old one ended, so the old token is refused from now on.
 */
export function grantOfferLease(
  job: JobContext,
  state: JobState,
  agentId: string,
  attempt: number,
): Result<OfferedLease, FenceRefusal> {
  if (isTerminal(state.status)) return leaseEnded(state);
  if (state.status !== "QUEUED" || state.attempt !== attempt || state.dispatchedAttempt < attempt) {
    return refused("stale_lease", `attempt ${attempt} of ${state.id} is not waiting for an agent (${state.status})`);
  }
  const now = job.now();
  const leaseToken = randomHex(24);
  const expiresAt = now + job.config.leaseS * 1000;
  state.leaseToken = leaseToken;
  state.lease = { attempt, agentId, leaseToken, expiresAt, lastSeenAt: now };
  job.commit(state);
  return ok({ leaseToken, expiresAt });
}

/**
 * The offer to `agentId` failed (refused, timed out, its socket closed) before it was accepted:
 * the lease goes back and the token is replaced, so nothing the agent sends under it is taken.
 * An accepted attempt (RUNNING) is not an offer any more and is left alone. True when taken back.
 */
export function takeBackOfferLease(job: JobContext, state: JobState, agentId: string, attempt: number): boolean {
  const lease = state.lease;
  if (state.status !== "QUEUED" || !lease || lease.agentId !== agentId || lease.attempt !== attempt) return false;
  state.lease = null;
  state.leaseToken = randomHex(24);
  job.commit(state);
  return true;
}
