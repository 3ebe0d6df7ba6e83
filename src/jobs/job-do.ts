// JobDO: one Durable Object per job — its state machine, its lock and its lease. It is the only
// writer of the job's state; side effects go through the outbox and timeouts through one alarm.
import { DurableObject } from "cloudflare:workers";
import {
  type ExecutionResult,
  type ExecutionSpec,
  type FencedAgentMessage,
  isTerminal,
  type JobStatus,
  type JobView,
  LOG_TAIL_LINES,
  maxRisk,
  type PlanSpec,
} from "../../protocol/index.ts";
import { type Config, loadConfig } from "../config.ts";
import { buildExecutionSpec } from "../core/dispatcher.ts";
import { type JobEvent, transition } from "../core/job-machine.ts";
import { requiresAudit, validateExecutionSpec } from "../core/policy.ts";
import { measureFor } from "../ledger/metric-counters.ts";
import { getDb, incrementCounter } from "../ledger/store.ts";
import { randomHex } from "../lib/crypto.ts";
import { log } from "../lib/log.ts";
import { meterObject } from "../lib/op-meter.ts";
import { redactorFor } from "../lib/redact.ts";
import { handleAgentMessage } from "./agent-events.ts";
import { checkDeadlines, planJob, purgeIfExpired } from "./alarm-work.ts";
import { drainOutbox, scheduleJobAlarm } from "./drain.ts";
import { type JobState, stepsFromSpec, toView } from "./job-state.ts";
import { LogBuffer, type LogPosition } from "./log-buffer.ts";
import { Outbox, type OutboxItem } from "./outbox.ts";
import { markUnreachable, reachableAgain } from "./unreachable.ts";

export interface Actor {
  id: string;
  isAdmin: boolean;
}

export interface CreateJobInput {
  jobId: string;
  projectId: string;
  intent: string;
  userId: string | null;
  chatId: string | null;
  messageId?: number | null;
}

export type JobResult =
  | { ok: true; job: JobView }
  | { ok: false; code: "not_found" | "forbidden" | "conflict"; message: string };
export type DispatchOutcome = "offered" | "pending" | "duplicate" | "stale";
export type FenceResult =
  | { ok: true }
  | { ok: false; code: "stale_lease" | "lease_ended" | "not_found" | "bad_message"; message: string };

/** The refusal for anything carrying the lease of a job that is already final. */
export function leaseEnded(state: { id: string; status: JobStatus }): FenceResult {
  return { ok: false, code: "lease_ended", message: `job ${state.id} is ${state.status}: its lease has ended` };
}

/** A QUEUED job older than this is offered again by the Sentinel (backoffs lifted). */
export const REOFFER_AFTER_MS = 60_000;

/** A planning attempt not finished after this long was cut off (the planner's own timeout is 30 s). */
export const PLAN_STALL_MS = 90_000;
export const MAX_PLAN_ATTEMPTS = 2;

export class JobDO extends DurableObject<Env> {
  // Public so the job's helper modules (agent events, effects) and tests can reach them.
  // biome-ignore lint/complexity/noBannedTypes: matches the base class's default Props type
  declare readonly ctx: DurableObjectState<{}>;
  declare readonly env: Env;
  readonly config: Config;
  // Created on first use: a job whose storage was deleted after retention is not given empty
  // tables again by a later read (a status lookup, a stray agent message).
  private logBuffer: LogBuffer | null = null;
  private outboxTable: Outbox | null = null;
  get logs(): LogBuffer {
    this.logBuffer ??= new LogBuffer(this.ctx.storage.sql, redactorFor(this.env));
    return this.logBuffer;
  }
  get outbox(): Outbox {
    this.outboxTable ??= new Outbox(this.ctx.storage.sql);
    return this.outboxTable;
  }
  /** Set while the outbox is being drained; a drain asked for meanwhile runs again after. */
  draining = false;
  drainAgain = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    meterObject(this, ctx, env);
    this.config = loadConfig(env);
  }

  // ---- state helpers -------------------------------------------------------------------------

  /** Operation counts not yet stored: they are saved with the next state commit (no extra write). */
  private unsavedOps = new Map<string, number>();

  /** Counts this job's operations (requests to the object, effects performed): the cost basis. */
  count(kind: string): void {
    this.unsavedOps.set(kind, (this.unsavedOps.get(kind) ?? 0) + 1);
  }

  private saveOps(): void {
    if (this.unsavedOps.size === 0) return;
    this.createOpCounts();
    for (const [kind, n] of this.unsavedOps) {
      this.ctx.storage.sql.exec(
        "INSERT INTO op_counts (kind, n) VALUES (?, ?) ON CONFLICT(kind) DO UPDATE SET n = n + excluded.n",
        kind,
        n,
      );
    }
    this.unsavedOps.clear();
  }

  /** The operation counts (GET /api/jobs/:id/ops). */
  private createOpCounts(): void {
    this.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS op_counts (kind TEXT PRIMARY KEY, n INTEGER NOT NULL)");
  }

  async opCounts(): Promise<Record<string, number>> {
    if (!this.load()) return {};
    this.createOpCounts();
    this.saveOps();
    const rows = this.ctx.storage.sql.exec<{ kind: string; n: number }>("SELECT kind, n FROM op_counts").toArray();
    return Object.fromEntries(rows.map((r) => [r.kind, r.n]));
  }

  load(): JobState | undefined {
    return this.ctx.storage.kv.get<JobState>("job");
  }

  /** Saves state and queues effects atomically; a ledger snapshot always follows a save. */
  commit(state: JobState, effects: OutboxItem[] = []): void {
    state.updatedAt = Date.now();
    this.ctx.storage.transactionSync(() => {
      this.saveOps();
      this.ctx.storage.kv.put("job", state);
      this.outbox.add({ kind: "ledger" });
      for (const e of effects) this.outbox.add(e);
    });
  }

  /** Applies a state-machine event; throws on an illegal one (callers check first). */
  move(state: JobState, event: JobEvent, detail: Record<string, unknown> | null = null): OutboxItem[] {
    const from = state.status;
    const t = transition(from, event);
    if (!t.ok) throw new Error(t.error);
    state.status = t.to;
    state.eventSeq += 1;
    const now = Date.now();
    // Any real change of status ends what the requester was told to wait for.
    if (t.to !== from) {
      state.notice = null;
      state.unreachableSince = null;
      state.withoutJobAt = null;
    }
    if (isTerminal(t.to)) state.finishedAt = now;
    log("info", "job transition", { jobId: state.id, from, to: t.to, event, attempt: state.attempt });
    const lastAt = state.lastAtByStatus ?? {
      ...(state.queuedAt !== null ? { QUEUED: state.queuedAt } : {}),
      ...(state.startedAt !== null ? { RUNNING: state.startedAt } : {}),
    };
    const measure = measureFor(t.to, now, lastAt);
    state.lastAtByStatus = { ...lastAt, [t.to]: now };
    const effects: OutboxItem[] = [
      { kind: "event", seq: state.eventSeq, fromStatus: from, toStatus: t.to, event, detail, at: now, measure },
      // A job that ended gets its answer before the notification that tells it.
      ...(isTerminal(t.to) && from !== t.to ? [{ kind: "answer" } as const] : []),
      { kind: "notify" },
    ];
    if (isTerminal(t.to)) effects.push({ kind: "archive_log" });
    return effects;
  }

  view(state: JobState): JobView {
    return toView(state, this.logs.tail(LOG_TAIL_LINES));
  }

  // ---- RPC: lifecycle --------------------------------------------------------------------------

  async create(input: CreateJobInput): Promise<JobView> {
    this.count("rpc.create");
    const existing = this.load();
    if (existing) return this.view(existing);
    const now = Date.now();
    const state: JobState = {
      id: input.jobId,
      projectId: input.projectId,
      intent: input.intent,
      userId: input.userId,
      chatId: input.chatId,
      messageId: input.messageId ?? null,
      status: "CREATED",
      risk: null,
      attempt: 0,
      dispatchedAttempt: 0,
      leaseToken: null,
      lease: null,
      plan: null,
      spec: null,
      steps: [],
      artifacts: [],
      writeStarted: false,
      needsApproval: false,
      approvalDeadline: null,
      decidedBy: null,
      error: null,
      result: null,
      createdAt: now,
      updatedAt: now,
      queuedAt: null,
      startedAt: null,
      finishedAt: null,
      eventSeq: 1,
      planningStarted: false,
    };
    this.commit(state, [
      { kind: "event", seq: 1, fromStatus: null, toStatus: "CREATED", event: "create", detail: null, at: now },
    ]);
    // Planning runs in the alarm, outside the caller's request: the webhook answers at once.
    await this.ctx.storage.setAlarm(now);
    await this.drain();
    return this.view(state);
  }

  /** Gateway path: a ready execution spec, approved by whoever submitted it. */
  async createFromSpec(spec: ExecutionSpec, actor: Actor): Promise<JobResult> {
    this.count("rpc.createFromSpec");
    if (this.load()) return conflict(`job ${spec.jobId} already exists`);
    const now = new Date();
    const plan: PlanSpec = {
      jobId: spec.jobId,
      userIntentSummary: `execution spec with ${spec.steps.length} step(s)`,
      proposedSteps: spec.steps.map((s) => ({
        description: s.action,
        risk: s.risk,
        action: s.action,
        params: s.params,
      })),
      estimatedRiskLevel: maxRisk(...spec.steps.map((s) => s.risk)),
      expectedArtifacts: [],
      planner: "rules",
      createdAt: now.toISOString(),
    };
    await this.create({
      jobId: spec.jobId,
      projectId: spec.projectId,
      intent: plan.userIntentSummary,
      userId: actor.id,
      chatId: null,
    });
    const state = this.load();
    if (!state) return notFound();
    state.planningStarted = true;
    state.plan = plan;
    state.risk = plan.estimatedRiskLevel;
    state.decidedBy = actor.id;
    const effects = this.move(state, "plan_ready", { planner: "gateway" });
    if (requiresAudit(state.risk)) {
      effects.push({
        kind: "audit",
        actor: actor.id,
        action: "gateway_execute_admin",
        detail: { steps: spec.steps.length },
        at: Date.now(),
      });
    }
    effects.push(...this.dispatchFromPlan(state, "approve"));
    this.commit(state, effects);
    await this.afterChange();
    return { ok: true, job: this.view(state) };
  }

  async get(): Promise<JobView | null> {
    this.count("rpc.get");
    const state = this.load();
    return state ? this.view(state) : null;
  }

  async setMessage(chatId: string, messageId: number): Promise<void> {
    this.count("rpc.setMessage");
    const state = this.load();
    if (!state) return;
    state.chatId = chatId;
    state.messageId = messageId;
    this.commit(state);
    await this.drain();
  }

  async approve(actor: Actor): Promise<JobResult> {
    this.count("rpc.approve");
    const state = this.load();
    if (!state) return notFound();
    if (!mayDecide(state, actor))
      return forbidden("only the person who asked for this job (or an admin) may approve it");
    if (state.status !== "PLANNED") return conflict(`job is ${state.status}, not waiting for approval`);
    state.decidedBy = actor.id;
    const effects: OutboxItem[] = [];
    if (state.risk && requiresAudit(state.risk)) {
      effects.push({
        kind: "audit",
        actor: actor.id,
        action: "approve_admin_job",
        detail: { risk: state.risk },
        at: Date.now(),
      });
    }
    effects.push(...this.dispatchFromPlan(state, "approve"));
    this.commit(state, effects);
    await this.afterChange();
    return { ok: true, job: this.view(state) };
  }

  async deny(actor: Actor, reason = "denied"): Promise<JobResult> {
    this.count("rpc.deny");
    const state = this.load();
    if (!state) return notFound();
    if (!mayDecide(state, actor)) return forbidden("only the person who asked for this job (or an admin) may deny it");
    if (state.status !== "PLANNED") return conflict(`job is ${state.status}, not waiting for approval`);
    state.decidedBy = actor.id;
    state.error = `denied by ${actor.id}${reason && reason !== "denied" ? `: ${reason}` : ""}`;
    this.commit(state, this.move(state, "cancel", { reason: "denied", by: actor.id }));
    await this.afterChange();
    return { ok: true, job: this.view(state) };
  }

  async cancel(actor: Actor, reason = "cancelled"): Promise<JobResult> {
    this.count("rpc.cancel");
    const state = this.load();
    if (!state) return notFound();
    if (!mayDecide(state, actor))
      return forbidden("only the person who asked for this job (or an admin) may cancel it");
    if (isTerminal(state.status)) return conflict(`job already ${state.status}`);
    this.commit(
      state,
      this.cancelEffects(state, `cancelled by ${actor.id}${reason !== "cancelled" ? `: ${reason}` : ""}`),
    );
    await this.afterChange();
    return { ok: true, job: this.view(state) };
  }

  /** Moves a non-terminal job to CANCELLED and, if an agent may hold it, tells the agent. */
  cancelEffects(state: JobState, reason: string): OutboxItem[] {
    const hadDispatch = state.dispatchedAttempt > 0 && state.dispatchedAttempt === state.attempt;
    state.error = reason;
    // The lease ends with the job, so the agent's own report of the killed step will be refused:
    // a step that was running is recorded as cancelled here (its exit code stays unknown).
    for (const step of state.steps) {
      if (step.state !== "running") continue;
      step.state = "cancelled";
      step.error = reason;
    }
    const effects = this.move(state, "cancel", { reason });
    if (hadDispatch) effects.push({ kind: "cancel_agent", attempt: state.attempt, reason });
    return effects;
  }

  failEffects(state: JobState, reason: string): OutboxItem[] {
    const hadDispatch = state.dispatchedAttempt > 0 && state.dispatchedAttempt === state.attempt;
    state.error = reason;
    const effects = this.move(state, "fail", { reason });
    if (hadDispatch) effects.push({ kind: "cancel_agent", attempt: state.attempt, reason });
    return effects;
  }

  /** PLANNED (approve) or RUNNING (requeue) → QUEUED with a new attempt and an execution spec. */
  dispatchFromPlan(state: JobState, event: "approve" | "requeue"): OutboxItem[] {
    if (!state.plan) return this.failEffects(state, "no plan to dispatch");
    const attempt = state.attempt + 1;
    const built = buildExecutionSpec(state.plan, {
      attempt,
      projectId: state.projectId,
      jobTimeoutS: this.config.jobTimeoutS,
    });
    const checked = built.ok ? validateExecutionSpec(built.spec) : built;
    if (!built.ok || !checked.ok) {
      return this.failEffects(state, `dispatch refused: ${built.ok ? (checked.ok ? "" : checked.error) : built.error}`);
    }
    const effects = this.move(state, event, { attempt });
    state.attempt = attempt;
    state.spec = built.spec;
    state.steps = stepsFromSpec(built.spec, state.plan);
    state.leaseToken = null;
    state.lease = null;
    state.queuedAt = Date.now();
    state.risk = maxRisk(...built.spec.steps.map((s) => s.risk));
    effects.push({ kind: "enqueue", attempt });
    return effects;
  }

  // ---- RPC: dispatch (queue consumer) -----------------------------------------------------------

  /** Plans now if the job has not been planned yet (orchestrator.generatePlan); returns the view. */
  async planNow(): Promise<JobView | null> {
    this.count("rpc.planNow");
    const state = this.load();
    if (!state) return null;
    if (state.status === "CREATED" && !state.planningStarted) {
      await this.plan(state);
      await this.afterChange();
    }
    const after = this.load();
    return after ? this.view(after) : null;
  }

  async dispatch(attempt: number): Promise<DispatchOutcome> {
    this.count("rpc.dispatch");
    const state = this.load();
    if (state?.status !== "QUEUED" || attempt !== state.attempt || !state.spec) return "stale";
    if (state.dispatchedAttempt >= attempt) return "duplicate";
    state.dispatchedAttempt = attempt;
    state.leaseToken = randomHex(24);
    this.commit(state);
    const { getEngine } = await import("../execution/engine.ts");
    try {
      const outcome = await getEngine(this.env).execute(state.spec, state.leaseToken);
      return outcome;
    } catch (err) {
      // Let the queue retry this attempt: undo the mark so the redelivery is not dropped.
      const again = this.load();
      if (again && again.status === "QUEUED" && again.attempt === attempt) {
        again.dispatchedAttempt = attempt - 1;
        again.leaseToken = null;
        this.commit(again);
      }
      throw err;
    } finally {
      await this.afterChange();
    }
  }

  /**
   * Operator nudge (and the Sentinel's): offers the current attempt again. A QUEUED attempt
   * already handed to the registry is re-offered there at once (agents' backoffs lifted, an
   * outstanding offer kept); one whose dispatch message never arrived is sent again.
   */
  async redeliver(): Promise<
    { ok: true; attempt: number; outcome: "offered" | "pending" | "enqueued" } | { ok: false; message: string }
  > {
    this.count("rpc.redeliver");
    const state = this.load();
    if (!state) return { ok: false, message: "no such job" };
    if (state.status !== "QUEUED") {
      const holder = state.status === "RUNNING" && state.lease ? ` on agent ${state.lease.agentId}` : "";
      return { ok: false, message: `the job is ${state.status}${holder}; only a QUEUED job can be offered again` };
    }
    if (state.dispatchedAttempt === state.attempt && state.leaseToken && state.spec) {
      const { getEngine } = await import("../execution/engine.ts");
      const outcome = await getEngine(this.env).execute(state.spec, state.leaseToken);
      return { ok: true, attempt: state.attempt, outcome };
    }
    await this.env.DISPATCH_QUEUE.send({ jobId: state.id, attempt: state.attempt });
    return { ok: true, attempt: state.attempt, outcome: "enqueued" };
  }

  /** From the registry: why no connected agent can take this QUEUED attempt (a job event and a notification). */
  async waitingNotice(attempt: number, text: string): Promise<void> {
    this.count("rpc.waitingNotice");
    const state = this.load();
    if (state?.status !== "QUEUED" || state.attempt !== attempt || state.notice === text) return;
    const effects = this.move(state, "waiting", { attempt, reason: text });
    state.notice = text;
    this.commit(state, effects);
    await this.afterChange();
  }

  async deadLetter(attempt: number, reason: string): Promise<boolean> {
    this.count("rpc.deadLetter");
    const state = this.load();
    if (!state || isTerminal(state.status) || attempt !== state.attempt) return false;
    this.commit(state, [
      ...this.failEffects(state, `dispatch failed after retries: ${reason}`),
      { kind: "audit", actor: "queue", action: "dead_letter", detail: { attempt, reason }, at: Date.now() },
    ]);
    await this.afterChange();
    return true;
  }

  /** Parked outbox items put back in line (POST /api/jobs/:id/outbox/replay); null: no such job. */
  async replayOutbox(): Promise<{ replayed: { kind: string; tries: number; error: string | null }[] } | null> {
    this.count("rpc.replayOutbox");
    if (!this.load()) return null;
    const rows = this.outbox.replay();
    if (rows.length > 0) {
      log("info", "outbox: parked items replayed", { jobId: this.load()?.id, items: rows.length });
      await incrementCounter(getDb(this.env.DB), "outbox_replayed", rows.length).catch(() => undefined);
      await this.afterChange();
    }
    return { replayed: rows.map((r) => ({ kind: r.kind, tries: r.tries, error: r.error })) };
  }

  // ---- RPC: agent traffic (relayed by the registry) -----------------------------------------------

  async agentMessage(agentId: string, msg: FencedAgentMessage, agentName?: string): Promise<FenceResult> {
    this.count("rpc.agentMessage");
    const state = this.load();
    if (!state) return { ok: false, code: "not_found", message: "no such job" };
    const result = await handleAgentMessage(this, state, agentId, msg, agentName ?? agentId);
    await this.afterChange();
    return result;
  }

  /** Heartbeat or resume from the lease holder: extends the lease; anything else is stale. */
  async renewLease(agentId: string, attempt: number, leaseToken: string): Promise<FenceResult> {
    this.count("rpc.renewLease");
    const state = this.load();
    if (!state) return { ok: false, code: "not_found", message: "no such job" };
    if (isTerminal(state.status)) return leaseEnded(state);
    const lease = state.lease;
    if (!lease || lease.attempt !== attempt || lease.leaseToken !== leaseToken || lease.agentId !== agentId) {
      return {
        ok: false,
        code: "stale_lease",
        message: `attempt ${attempt} of ${state.id} is not leased to this agent`,
      };
    }
    const now = Date.now();
    lease.expiresAt = now + this.config.leaseS * 1000;
    lease.lastSeenAt = now;
    if (state.unreachableSince) {
      this.commit(state, reachableAgain(this, state));
      await this.afterChange();
      return { ok: true };
    }
    this.ctx.storage.kv.put("job", state);
    await this.scheduleAlarm(state);
    return { ok: true };
  }

  /**
   * The holder of this unreachable job is connected again and does not list it (it restarted):
   * unless its result is replayed within WITHOUT_JOB_CONFIRM_MS, the outcome is unknown now
   * rather than after the whole unreachable bound.
   */
  async agentWithoutJob(agentId: string, attempt: number): Promise<void> {
    this.count("rpc.agentWithoutJob");
    const s = this.load();
    if (s?.status !== "RUNNING" || !s.unreachableSince || s.withoutJobAt) return;
    if (s.lease?.agentId !== agentId || s.lease.attempt !== attempt) return;
    s.withoutJobAt = Date.now();
    this.ctx.storage.kv.put("job", s);
    await this.scheduleAlarm(s);
  }

  /** The lease holder's socket closed: give it the reconnect grace instead of the full lease. */
  async agentDisconnected(agentId: string, attempt: number): Promise<void> {
    this.count("rpc.agentDisconnected");
    const state = this.load();
    if (!state?.lease || state.lease.agentId !== agentId || state.lease.attempt !== attempt) return;
    state.lease.expiresAt = Math.min(state.lease.expiresAt, Date.now() + this.config.reconnectGraceS * 1000);
    this.ctx.storage.kv.put("job", state);
    await this.scheduleAlarm(state);
  }

  /** For an artifact upload: "ended" once the job is final, whoever asks. */
  async leaseValid(attempt: number, leaseToken: string, agentId: string): Promise<boolean | "ended"> {
    this.count("rpc.leaseValid");
    const s = this.load();
    if (s && isTerminal(s.status)) return "ended";
    return (
      !!s?.lease && s.lease.attempt === attempt && s.lease.leaseToken === leaseToken && s.lease.agentId === agentId
    );
  }

  async readLogs(opts: { tail?: number; grep?: string }): Promise<{ lines: string[]; status: JobStatus } | null> {
    this.count("rpc.readLogs");
    const state = this.load();
    if (!state) return null;
    const lines = opts.grep ? this.logs.search(opts.grep) : this.logs.tail(opts.tail ?? 100).split("\n");
    return { lines: opts.grep && opts.tail ? lines.slice(-opts.tail) : lines, status: state.status };
  }

  /** New log text after `pos` (null: from the start), for the live stream. */
  async readLogChunks(
    pos: LogPosition | null,
  ): Promise<{ text: string; next: LogPosition | null; status: JobStatus } | null> {
    this.count("rpc.readLogChunks");
    const state = this.load();
    if (!state) return null;
    const { chunks, next } = this.logs.after(pos);
    return { text: chunks.join(""), next, status: state.status };
  }

  // ---- alarm: planning, timeouts, lease expiry, outbox retries ---------------------------------

  override async alarm(): Promise<void> {
    this.count("alarm");
    if (await purgeIfExpired(this)) return;
    await this.tick();
  }

  /** Sentinel: re-runs the timeout checks (in case an alarm was missed) and re-arms the alarm. */
  async sentinelCheck(offlineAgents: string[]): Promise<JobStatus | null> {
    this.count("rpc.sentinelCheck");
    const s = this.load();
    if (!s) return null;
    if (s.status === "RUNNING" && s.lease && offlineAgents.includes(s.lease.agentId)) {
      s.lease.expiresAt = Math.min(s.lease.expiresAt, Date.now());
      this.ctx.storage.kv.put("job", s);
    }
    await this.tick();
    const after = this.load();
    // A job waiting this long may have missed its offer (a lost message, a backoff): offer it again.
    if (after?.status === "QUEUED" && after.queuedAt !== null && Date.now() - after.queuedAt >= REOFFER_AFTER_MS) {
      await this.redeliver();
    }
    return this.load()?.status ?? null;
  }

  async tick(): Promise<void> {
    await checkDeadlines(this);
  }

  runLimitS(s: JobState): number {
    return Math.min(s.spec?.timeoutS ?? this.config.jobTimeoutS, this.config.jobTimeoutS) + 30;
  }

  /**
   * Agent lost: re-dispatch only while no WRITE/ADMIN step has started. One that had started is
   * flagged unreachable and waits for its result (alarm-work.ts), never failed for this.
   */
  infraFailure(state: JobState, reason: string): OutboxItem[] {
    const oldAttempt = state.attempt;
    if (state.writeStarted) return state.unreachableSince ? [] : markUnreachable(this, state);
    if (state.attempt >= this.config.maxDispatchAttempts) {
      return this.failEffects(state, `${reason}; gave up after ${state.attempt} attempts`);
    }
    log("warn", "re-dispatching after infrastructure failure", { jobId: state.id, attempt: oldAttempt, reason });
    const cancelOld: OutboxItem = { kind: "cancel_agent", attempt: oldAttempt, reason };
    return [cancelOld, ...this.dispatchFromPlan(state, "requeue")];
  }

  async plan(state: JobState): Promise<void> {
    await planJob(this, state);
  }

  // ---- effects ---------------------------------------------------------------------------------

  async afterChange(): Promise<void> {
    await this.drain();
    const s = this.load();
    if (s) await this.scheduleAlarm(s);
  }

  async drain(): Promise<void> {
    await drainOutbox(this);
  }

  async scheduleAlarm(s: JobState): Promise<void> {
    await scheduleJobAlarm(this, s);
  }

  /** Records a final result from the agent (used by agent-events). */
  finish(state: JobState, result: ExecutionResult): OutboxItem[] {
    state.result = result;
    if (isTerminal(state.status)) return [];
    if (result.status === "SUCCEEDED") return this.move(state, "succeed", { attempt: result.attempt });
    if (result.status === "CANCELLED") {
      state.error = state.error ?? result.error ?? "cancelled on the agent";
      return this.move(state, "cancel", { attempt: result.attempt, reason: state.error });
    }
    state.error = result.error ?? result.steps.find((x) => x.outcome === "failed")?.error ?? "a step failed";
    return this.move(state, "fail", { attempt: result.attempt, reason: state.error });
  }
}

function mayDecide(state: JobState, actor: Actor): boolean {
  return actor.isAdmin || (state.userId !== null && state.userId === actor.id);
}
const notFound = (): JobResult => ({ ok: false, code: "not_found", message: "no such job" });
const forbidden = (message: string): JobResult => ({ ok: false, code: "forbidden", message });
const conflict = (message: string): JobResult => ({ ok: false, code: "conflict", message });
