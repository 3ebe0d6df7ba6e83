// Which agent may take a job: the least busy capable one not excluded or backed off; how long an
// agent is backed off after a failed offer; which refusals are permanent; and, when no connected
// agent can take a job, why (the requester is told).
import { type Capability, type ExecutionSpec, getAction } from "../../protocol/index.ts";

/** An agent's backoff for one job after failed offers. */
export interface Backoff {
  until: number;
  failures: number;
}

/** A job waiting for an agent: what matching reads of it (assignments.ts stores it). */
export interface PendingJob {
  jobId: string;
  attempt: number;
  leaseToken: string;
  spec: ExecutionSpec;
  /** Agents that refused this attempt for good, with their reason. */
  excluded: Record<string, string>;
  backoff: Record<string, Backoff>;
  /** The last "nobody can serve this" notice sent to the job, so it is sent once. */
  notice: string | null;
}

/** Backoff after the n-th consecutive failed offer of a job to one agent: 2 s, 4 s … 60 s. */
export const OFFER_BACKOFF_BASE_MS = 2_000;
export const OFFER_BACKOFF_MAX_MS = 60_000;

export function offerBackoffMs(failures: number): number {
  return Math.min(OFFER_BACKOFF_BASE_MS * 2 ** Math.max(0, failures - 1), OFFER_BACKOFF_MAX_MS);
}

/** A refusal that will not change by waiting: the agent lacks the project, action or permission. */
export function rejectIsPermanent(reason: string): boolean {
  if (/concurrency limit|busy|try again|shutting down|stopping/i.test(reason)) return false;
  // The agent's own wording (agent/src/offers.ts OfferDesk.take, executor.ts recheckStep).
  return /does not serve project|no such workspace|unknown action|invalid params|the step claims|not allowed|allow-shell|disagree|unreadable offer/i.test(
    reason,
  );
}

export interface AgentProfile {
  agentId: string;
  name: string;
  capabilities: Capability[];
  workspaces: string[];
  maxConcurrency: number;
  allowShell: boolean;
  version: string;
}

/** Agents a job may not be offered to right now: excluded for good, or backed off. */
export function unavailableFor(job: PendingJob, now: number): string[] {
  return [
    ...Object.keys(job.excluded),
    ...Object.entries(job.backoff)
      .filter(([, b]) => b.until > now)
      .map(([id]) => id),
  ];
}

/** The least busy connected agent that can run every step of the spec in its project. */
export function chooseAgent(
  spec: ExecutionSpec,
  required: Set<Capability>,
  agents: AgentProfile[],
  load: (agentId: string) => number,
  exclude: string[],
): AgentProfile | undefined {
  let best: AgentProfile | undefined;
  let bestLoad = Number.POSITIVE_INFINITY;
  for (const a of agents) {
    if (exclude.includes(a.agentId) || !a.workspaces.includes(spec.projectId)) continue;
    if ([...required].some((c) => !a.capabilities.includes(c))) continue;
    const l = load(a.agentId);
    if (l >= a.maxConcurrency) continue;
    const ratio = l / a.maxConcurrency;
    if (ratio < bestLoad) {
      best = a;
      bestLoad = ratio;
    }
  }
  return best;
}

/**
 * Why no connected agent can ever take this job as things stand (null when one could, once it
 * has a free slot or its backoff ends, or when none is connected): the project, a capability, or
 * every such agent refused.
 */
export function whyUnservable(job: PendingJob, required: Set<Capability>, agents: AgentProfile[]): string | null {
  // With no agent connected at all, "Queued, waiting for an agent" already says it all (and the
  // Sentinel alerts the admins): a notice is for agents that are there but cannot take the job.
  if (agents.length === 0) return null;
  const project = job.spec.projectId;
  const serving = agents.filter((a) => a.workspaces.includes(project));
  if (serving.length === 0) return `no connected agent serves project "${project}"; waiting for one that does`;
  const capable = serving.filter((a) => [...required].every((c) => a.capabilities.includes(c)));
  if (capable.length === 0) {
    const missing = [...required].filter((c) => !serving.some((a) => a.capabilities.includes(c)));
    const what = missing.length > 0 ? missing.join(", ") : [...required].join(", ");
    const shell = missing.includes("shell") ? " (an agent started with --allow-shell)" : "";
    return `no connected agent for project "${project}" can run ${what}${shell}; waiting for one that can`;
  }
  const willing = capable.filter((a) => !(a.agentId in job.excluded));
  if (willing.length === 0) {
    const reasons = capable.map((a) => `${a.name}: ${job.excluded[a.agentId]}`).join("; ");
    return `every connected agent for project "${project}" refused this job (${reasons}); waiting for another`;
  }
  return null;
}

/** The capabilities a spec's steps need (an unknown action needs none here: the agent refuses it). */
export function requiredCapabilities(spec: ExecutionSpec): Set<Capability> {
  return new Set(spec.steps.map((s) => getAction(s.action)?.capability).filter((c): c is Capability => !!c));
}
