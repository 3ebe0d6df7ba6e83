// The JobDO's stored state, its lease, and the public view built from it.
import {
  type ArtifactRef,
  type ExecutionResult,
  type ExecutionSpec,
  type JobAnswer,
  type JobStatus,
  type JobView,
  LOG_TAIL_LINES,
  type PlanSpec,
  type RiskLevel,
  type StepState,
  type TokenTally,
} from "../../protocol/index.ts";
import type { FollowUpContext } from "../planners/follow-up.ts";
import type { LogBuffer } from "./log-buffer.ts";

export interface Lease {
  attempt: number;
  agentId: string;
  leaseToken: string;
  expiresAt: number;
  /** When the holder was last heard from (any message or heartbeat). */
  lastSeenAt?: number;
}

export interface StepRecord {
  stepId: string;
  action: string;
  description: string;
  risk: RiskLevel;
  state: StepState;
  exitCode: number | null;
  startedAt: number | null;
  durationMs: number | null;
  error: string | null;
}

export interface JobState {
  id: string;
  projectId: string;
  intent: string;
  userId: string | null;
  chatId: string | null;
  messageId: number | null;
  status: JobStatus;
  risk: RiskLevel | null;
  /** Current dispatch attempt (0 until first dispatched). */
  attempt: number;
  /**
   * Highest attempt handed to a provider: a queue redelivery of it is dropped. Stored lazily,
   * with the record's next write: after a restart it may be behind, and the attempt is handed
   * over again (the registry keeps an attempt it has under the same token as it is).
   */
  dispatchedAttempt: number;
  /** Lease token minted with the current attempt (its queuing commit), before and after the agent accepts. */
  leaseToken: string | null;
  lease: Lease | null;
  plan: PlanSpec | null;
  spec: ExecutionSpec | null;
  steps: StepRecord[];
  artifacts: ArtifactRef[];
  writeStarted: boolean;
  needsApproval: boolean;
  approvalDeadline: number | null;
  decidedBy: string | null;
  error: string | null;
  result: ExecutionResult | null;
  createdAt: number;
  updatedAt: number;
  queuedAt: number | null;
  /**
   * When the server took the current attempt's accept: the lease and the run limit count from
   * it, never from anything the agent claims.
   */
  startedAt: number | null;
  /**
   * When that attempt started as the ledger dates it (its RUNNING event): the accept's arrival
   * less the time the agent held it, bounded by the queuing (agent-events.ts, runningAt). Shown
   * as the job's start; absent in states from before it was kept (startedAt then).
   */
  runningAt?: number | null;
  finishedAt: number | null;
  eventSeq: number;
  /** When the latest event into each status happened (RUNNING is never dated before QUEUED's). */
  lastAtByStatus?: Partial<Record<JobStatus, number>>;
  /**
   * When the job last entered each status from another one (an event that keeps the status does
   * not count): the /metrics latencies are measured from it.
   */
  enteredAt?: Partial<Record<JobStatus, number>>;
  planningStarted: boolean;
  /** When the current planning attempt began, and how many there were (a restart can cut one off). */
  planningStartedAt?: number | null;
  planAttempts?: number;
  /** Since when the agent holding a started WRITE/ADMIN step has been unreachable (null: it is not). */
  unreachableSince?: number | null;
  /** When that agent, connected again, did not list the job (it restarted without it). */
  withoutJobAt?: number | null;
  /** What the requester should know while the job waits (no agent can serve it, agent unreachable). */
  notice?: string | null;
  /** What the person asked to be told ("which failed"), read from the intent by the planner. */
  question?: string | null;
  /** How the plan was made, when the person should know ("Claude is unavailable, planned offline"). */
  planNotice?: string | null;
  /** The model calls' tokens for this job (planning and the answer). */
  tokens?: TokenTally | null;
  /** The short answer to the task, written when the job ended. */
  answer?: JobAnswer | null;
  /** The earlier job this one follows up (a Telegram reply), passed to the planner as data. */
  followUp?: FollowUpContext | null;
  /**
   * The job's operation counts (GET /api/jobs/:id/ops), saved inside the state so that counting
   * costs no storage row of its own.
   */
  opCounts?: Record<string, number>;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function stepsFromSpec(spec: ExecutionSpec, plan: PlanSpec | null): StepRecord[] {
  return spec.steps.map((s, i) => ({
    stepId: s.id,
    action: s.action,
    description: plan?.proposedSteps[i]?.description ?? s.action,
    risk: s.risk,
    state: "pending",
    exitCode: null,
    startedAt: null,
    durationMs: null,
    error: null,
  }));
}

export function toView(s: JobState, logTail: string): JobView {
  return {
    id: s.id,
    projectId: s.projectId,
    status: s.status,
    intent: s.intent,
    risk: s.risk,
    attempt: s.attempt,
    plan: s.plan,
    spec: s.spec,
    steps: s.steps.map((st) => ({ ...st, startedAt: iso(st.startedAt) })),
    artifacts: s.artifacts,
    artifactsNotStored: (s.result?.artifactsNotStored ?? []).map(({ name, reason }) => ({ name, reason })),
    logTail,
    error: s.error,
    notice: s.notice ?? null,
    planNotice: s.planNotice ?? null,
    question: s.question ?? null,
    answer: s.answer ?? null,
    tokens: s.tokens ?? null,
    parentJobId: s.followUp?.parentJobId ?? null,
    agentUnreachableSince: iso(s.unreachableSince ?? null),
    agentId: s.lease?.agentId ?? null,
    userId: s.userId,
    chatId: s.chatId,
    messageId: s.messageId,
    needsApproval: s.needsApproval,
    decidedBy: s.decidedBy,
    approvalDeadline: iso(s.approvalDeadline),
    createdAt: iso(s.createdAt) ?? "",
    updatedAt: iso(s.updatedAt) ?? "",
    startedAt: iso(s.runningAt ?? s.startedAt),
    finishedAt: iso(s.finishedAt),
  };
}

/** The job's view with its log's last lines. */
export function viewOf(s: JobState, logs: LogBuffer): JobView {
  return toView(s, logs.tail(LOG_TAIL_LINES));
}

/** The ledger row for this state (the JobDO writes whole snapshots, so replays are harmless). */
export function toLedgerRow(s: JobState) {
  return {
    id: s.id,
    projectId: s.projectId,
    userId: s.userId ?? "api",
    chatId: s.chatId,
    messageId: s.messageId,
    intent: s.intent,
    status: s.status,
    risk: s.risk,
    attempt: s.attempt,
    planJson: s.plan ? JSON.stringify(s.plan) : null,
    specJson: s.spec ? JSON.stringify(s.spec) : null,
    resultJson: s.result ? JSON.stringify(s.result) : null,
    error: s.error,
    // An offer's lease is not an agent running the job: the ledger names the agent from the
    // accept on, so granting the offer's lease costs no ledger write.
    agentId: s.status === "QUEUED" ? null : (s.lease?.agentId ?? null),
    answer: s.answer?.text ?? null,
    modelCalls: s.tokens?.calls ?? 0,
    tokensInput: s.tokens?.input ?? 0,
    tokensCached: s.tokens?.cachedInput ?? 0,
    tokensCacheWrite: s.tokens?.cacheWrite ?? 0,
    tokensOutput: s.tokens?.output ?? 0,
    createdAt: s.createdAt,
    updatedAt: s.updatedAt,
  };
}

/** What the ledger row of a state holds, but for its time (snapshots differing only there are equal). */
export function ledgerContent(state: JobState): string {
  const { updatedAt: _updatedAt, ...content } = toLedgerRow(state);
  return JSON.stringify(content);
}
