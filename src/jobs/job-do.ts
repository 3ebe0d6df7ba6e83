// JobDO: one Durable Object per job — its state machine, its lock and its lease. It is the only
// writer of the job's state; side effects go through the outbox and timeouts through one alarm.
//
// Each RPC reads the state, applies a change (transitions.ts, agent-events.ts, decisions.ts),
// commits it with its effects (job-store.ts) and then, in afterChange, drains the outbox
// (drain.ts) and re-arms the alarm at the next deadline (deadlines.ts). The alarm acts on the
// due deadline (alarm-work.ts). Helpers get a JobContext (job-context.ts), never this object.
import { DurableObject } from "cloudflare:workers";
import {
  type ExecutionSpec,
  err,
  type FencedAgentMessage,
  isTerminal,
  type JobStatus,
  type JobView,
  ok,
  type Result,
} from "../../protocol/index.ts";
import { loadConfig } from "../config.ts";
import { getDb, incrementCounter } from "../ledger/store.ts";
import { log } from "../lib/log.ts";
import { meterObject } from "../lib/op-meter.ts";
import { type BatchRefusal, handleAgentBatch, handleAgentMessage } from "./agent-events.ts";
import { checkDeadlines } from "./alarm-work.ts";
import { ChangeWaits } from "./change-waits.ts";
import { alarmAt, dueDeadline, REOFFER_AFTER_MS } from "./deadlines.ts";
import { approve, cancel, type Decision, deny, gatewayPlan, newJobState, startFromGateway } from "./decisions.ts";
import { deadLetter, dispatchAttempt, notDispatchable, noteWaiting, type Redelivery, redeliver } from "./dispatch.ts";
import { OutboxDrain } from "./drain.ts";
import {
  type Actor,
  accepted,
  type CreateJobInput,
  type DispatchOutcome,
  type FenceResult,
  type JobResult,
  noSuchJob,
} from "./job-api.ts";
import { type JobState, viewOf } from "./job-state.ts";
import { JobStore } from "./job-store.ts";
import {
  holderDisconnected,
  holderOffline,
  holderWithoutJob,
  leaseHeld,
  type Reissue,
  reissueOfferToken,
  renewLease,
} from "./lease.ts";
import type { LogPosition } from "./log-buffer.ts";
import type { OutboxItem } from "./outbox-items.ts";
import { planInline, planJob } from "./planning.ts";

/**
 * After create, the alarm that drains the outbox should the object stop before its own drain
 * ends; normally the job is done by then and the alarm only re-arms at the next deadline.
 */
const DRAIN_BACKSTOP_MS = 5_000;

// Callers name these through the object they talk to.
export type { Actor, CreateJobInput, DispatchOutcome, FenceResult, JobResult } from "./job-api.ts";

/** The longest one waitWhile call waits (the API's own limit on a wait is 300 s). */
export const MAX_WAIT_MS = 300_000;

export class JobDO extends DurableObject<Env> {
  private readonly job: JobStore;
  private readonly drain = new OutboxDrain();
  /** The latest work left running after an answer (tests wait for it). */
  private settled: Promise<void> = Promise.resolve();
  /** The waits (waitWhile, readLogChunksWhenMoved) woken by each commit and agent frame. */
  private readonly waits = new ChangeWaits();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // The dev-only op meter (SKYNET_OP_METER=1) wraps storage and bindings; a no-op otherwise.
    [ctx, env] = meterObject(this, ctx, env);
    this.job = new JobStore(
      ctx.storage,
      () => this.env,
      loadConfig(env),
      () => {
        this.drain.committed();
        this.waits.wake();
      },
    );
  }

  /** After every change: perform the effects it queued, then arm the alarm at the next deadline. */
  private async afterChange(): Promise<void> {
    this.job.flush();
    // Log output comes without a commit: a log stream waiting on this object hears of it here.
    this.waits.wake();
    await this.drain.run(this.job);
    await this.rearm();
  }

  /**
   * Arms the alarm at the job's next deadline or outbox retry (deadlines.ts). Each setAlarm or
   * deleteAlarm is a billed write: a job's normal path makes two, the create's backstop and,
   * once it is final and owes nothing, the move straight to its purge.
   */
  private async rearm(): Promise<void> {
    const s = this.job.peek();
    if (!s) return;
    const pending = this.job.outbox.pending();
    const next = alarmAt(s, this.job.config, pending, this.job.now());
    const current = await this.ctx.storage.getAlarm();
    if (next === null) {
      if (current !== null) await this.ctx.storage.deleteAlarm();
      return;
    }
    // Only ever move the alarm earlier: one that fires early just re-checks and re-arms, so the
    // lease renewals that push deadlines later (every agent message) cost no storage write. But
    // a final job that owes nothing has one deadline left: an earlier alarm (the create's
    // backstop) would only fire to re-arm there, one write and one invocation instead of a write.
    const settled = isTerminal(s.status) && pending.size === 0;
    if (current === null || next < current || (settled && next !== current)) await this.ctx.storage.setAlarm(next);
  }

  /** Loads the job for an RPC, counting the call: a copy the RPC may change and commit. */
  private enter(rpc: string): JobState | undefined {
    this.job.count(`rpc.${rpc}`);
    return this.job.load();
  }

  /** The job for an RPC that only reads it, counting the call (no copy). */
  private look(rpc: string): Readonly<JobState> | undefined {
    this.job.count(`rpc.${rpc}`);
    return this.job.peek();
  }

  // ---- RPC: lifecycle and decisions ------------------------------------------------------------

  async create(input: CreateJobInput): Promise<JobView> {
    const existing = this.enter("create");
    if (existing) return viewOf(existing, this.job.logs);
    // A task the rules read whole is planned (and queued) in the creating commit; one that needs
    // the model is planned by the alarm, outside the caller's request.
    return this.start(input, (state) => planInline(this.job, state) ?? []);
  }

  /**
   * Creates the job: its CREATED event and whatever `then` decides (its plan, approval and
   * dispatch when they need no outside call) in one commit, answered once that is durable.
   */
  private async start(input: CreateJobInput, then: (state: JobState) => OutboxItem[]): Promise<JobView> {
    const state = newJobState(input, this.job.now());
    const created: OutboxItem = {
      kind: "event",
      seq: 1,
      fromStatus: null,
      toStatus: "CREATED",
      event: "create",
      detail: null,
      at: state.createdAt,
    };
    this.job.commit(state, [created, ...then(state)]);
    // The caller is answered once the commit is durable; the ledger row, the dispatch and the
    // rest of the effects follow from the outbox. The alarm is the backstop should this object
    // stop before its drain ends (a job still CREATED is planned by it at once).
    await this.ctx.storage.setAlarm(state.status === "CREATED" ? state.createdAt : this.job.now() + DRAIN_BACKSTOP_MS);
    this.background(this.afterChange());
    return viewOf(state, this.job.logs);
  }

  /** Work that goes on after the answer; a failure is logged (the outbox and alarm retry it). */
  private background(work: Promise<void>): void {
    const done = work.catch((err: unknown) =>
      log("error", "job background work failed", { error: err instanceof Error ? err.message : String(err) }),
    );
    this.settled = Promise.all([this.settled, done]).then(() => undefined);
    this.ctx.waitUntil(done);
  }

  /** Gateway path: a ready execution spec, approved by whoever submitted it. */
  async createFromSpec(spec: ExecutionSpec, actor: Actor): Promise<JobResult> {
    if (this.enter("createFromSpec")) return err({ code: "conflict", message: `job ${spec.jobId} already exists` });
    const plan = gatewayPlan(spec, this.job.now());
    const input = { jobId: spec.jobId, projectId: spec.projectId, intent: plan.userIntentSummary, userId: actor.id };
    return ok(
      await this.start({ ...input, chatId: null }, (state) =>
        startFromGateway(this.job, state, plan, actor, spec.steps.length),
      ),
    );
  }

  async approve(actor: Actor): Promise<JobResult> {
    return this.decided(approve(this.job, this.enter("approve"), actor));
  }

  async deny(actor: Actor, reason = "denied"): Promise<JobResult> {
    return this.decided(deny(this.job, this.enter("deny"), actor, reason));
  }

  async cancel(actor: Actor, reason = "cancelled"): Promise<JobResult> {
    return this.decided(cancel(this.job, this.enter("cancel"), actor, reason));
  }

  /** A decision's outcome: when it changed the job, its effects run before the answer. */
  private async decided(decision: Decision): Promise<JobResult> {
    if (!decision.ok) return err(decision.error);
    await this.afterChange();
    return ok(viewOf(decision.value, this.job.logs));
  }

  async get(): Promise<JobView | null> {
    const state = this.look("get");
    return state ? viewOf(state, this.job.logs) : null;
  }

  /**
   * The job's view once its status is not one of `from`, or when `timeoutMs` (at most
   * MAX_WAIT_MS) has passed; null when there is no job. Woken by the commit that changes it, so a
   * waiting client hears of the change at once, for one request to this object per wait.
   */
  async waitWhile(from: JobStatus[], timeoutMs: number): Promise<JobView | null> {
    this.job.count("rpc.waitWhile");
    const deadline = Date.now() + Math.min(Math.max(0, timeoutMs), MAX_WAIT_MS);
    for (;;) {
      const state = this.job.peek();
      if (!state) return null;
      const left = deadline - Date.now();
      if (!from.includes(state.status) || left <= 0) return viewOf(state, this.job.logs);
      await this.waits.next(left);
    }
  }

  async setMessage(chatId: string, messageId: number): Promise<void> {
    const state = this.enter("setMessage");
    if (!state) return;
    state.chatId = chatId;
    state.messageId = messageId;
    this.job.commit(state);
    await this.drain.run(this.job);
  }

  // ---- RPC: planning and dispatch (orchestrator, queue consumer, registry) ---------------------

  /** Plans now if the job has not been planned yet (orchestrator.generatePlan); returns the view. */
  async planNow(): Promise<JobView | null> {
    const state = this.enter("planNow");
    if (!state) return null;
    if (state.status === "CREATED" && !state.planningStarted) {
      await planJob(this.job, state);
      await this.afterChange();
    }
    const after = this.job.peek();
    return after ? viewOf(after, this.job.logs) : null;
  }

  async dispatch(attempt: number): Promise<DispatchOutcome> {
    const state = this.enter("dispatch");
    const refused = notDispatchable(state, attempt);
    if (refused) return refused;
    try {
      return await dispatchAttempt(this.job, state, attempt);
    } finally {
      await this.afterChange();
    }
  }

  async redeliver(): Promise<Redelivery> {
    return redeliver(this.job, this.enter("redeliver"));
  }

  async waitingNotice(attempt: number, text: string): Promise<void> {
    if (noteWaiting(this.job, this.enter("waitingNotice"), attempt, text)) await this.afterChange();
  }

  async deadLetter(attempt: number, reason: string): Promise<boolean> {
    const failed = deadLetter(this.job, this.enter("deadLetter"), attempt, reason);
    if (failed) await this.afterChange();
    return failed;
  }

  /** Parked outbox items put back in line (POST /api/jobs/:id/outbox/replay); null: no such job. */
  async replayOutbox(): Promise<{ replayed: { kind: string; tries: number; error: string | null }[] } | null> {
    const state = this.enter("replayOutbox");
    if (!state) return null;
    const rows = this.job.outbox.replay();
    if (rows.length > 0) {
      log("info", "outbox: parked items replayed", { jobId: state.id, items: rows.length });
      await incrementCounter(getDb(this.env.DB), "outbox_replayed", rows.length).catch(() => undefined);
      await this.afterChange();
    }
    return { replayed: rows.map((r) => ({ kind: r.kind, tries: r.tries, error: r.error })) };
  }

  async opCounts(): Promise<Record<string, number>> {
    return this.job.peek() ? this.job.opCounts() : {};
  }

  // ---- RPC: agent traffic (relayed by the registry) -------------------------------------------

  async agentMessage(agentId: string, msg: FencedAgentMessage, agentName?: string): Promise<FenceResult> {
    const state = this.enter("agentMessage");
    if (!state) return noSuchJob();
    const result = await handleAgentMessage(this.job, state, agentId, msg, agentName ?? agentId);
    await this.afterChange();
    return result;
  }

  /** Several frames of one attempt in order (a `batch`): one call, one drain of their effects. */
  async agentBatch(
    agentId: string,
    msgs: FencedAgentMessage[],
    agentName?: string,
  ): Promise<Result<number, BatchRefusal>> {
    this.job.count("rpc.agentBatch");
    const apply = () => handleAgentBatch(this.job, agentId, msgs, agentName ?? agentId);
    // One state write for the whole batch, unless a frame waits on I/O (an artifact's R2 check),
    // during which the object may take other requests that must not be answered before their write.
    const result = msgs.some((m) => m.type === "artifact_ready") ? await apply() : await this.job.together(apply);
    await this.afterChange();
    return result;
  }

  /** Heartbeat or resume from the lease holder: extends the lease; anything else is stale. */
  async renewLease(agentId: string, attempt: number, leaseToken: string): Promise<FenceResult> {
    const state = this.enter("renewLease");
    if (!state) return noSuchJob();
    const renewed = renewLease(this.job, state, agentId, attempt, leaseToken);
    if (!renewed.ok) return renewed;
    // A renewal that only moved the lease drains nothing: it just re-arms the alarm.
    await (renewed.value === "committed" ? this.afterChange() : this.rearm());
    return accepted();
  }

  /**
   * From the registry, before it offers the attempt to another agent (an offer ended, or it lost
   * the token): a new token, every earlier one dead; or who already holds the attempt.
   */
  async reissueLease(attempt: number): Promise<Reissue> {
    const state = this.enter("reissueLease");
    if (!state) return { kind: "gone", reason: "no such job" };
    return reissueOfferToken(this.job, state, attempt);
  }

  async agentWithoutJob(agentId: string, attempt: number): Promise<void> {
    const s = this.enter("agentWithoutJob");
    if (s && holderWithoutJob(this.job, s, agentId, attempt)) await this.rearm();
  }

  async agentDisconnected(agentId: string, attempt: number): Promise<void> {
    const s = this.enter("agentDisconnected");
    if (s && holderDisconnected(this.job, s, agentId, attempt)) await this.rearm();
  }

  async leaseValid(attempt: number, leaseToken: string, agentId: string): Promise<boolean | "ended"> {
    return leaseHeld(this.look("leaseValid"), attempt, leaseToken, agentId);
  }

  async readLogs(opts: { tail?: number; grep?: string }): Promise<{ lines: string[]; status: JobStatus } | null> {
    const state = this.look("readLogs");
    if (!state) return null;
    const logs = this.job.logs;
    const lines = opts.grep ? logs.search(opts.grep) : logs.tail(opts.tail ?? 100).split("\n");
    return { lines: opts.grep && opts.tail ? lines.slice(-opts.tail) : lines, status: state.status };
  }

  /** New log text after `pos` (null: from the start), for the live stream. */
  async readLogChunks(
    pos: LogPosition | null,
  ): Promise<{ text: string; next: LogPosition | null; status: JobStatus } | null> {
    const state = this.look("readLogChunks");
    if (!state) return null;
    const { chunks, next } = this.job.logs.after(pos);
    return { text: chunks.join(""), next, status: state.status };
  }

  /**
   * As readLogChunks, once there is log after `pos` or the job's status is no longer `status`, or
   * when `timeoutMs` (at most MAX_WAIT_MS) has passed: a log stream waits here for what comes
   * next instead of asking again on a timer.
   */
  async readLogChunksWhenMoved(
    pos: LogPosition | null,
    status: JobStatus,
    timeoutMs: number,
  ): Promise<{ text: string; next: LogPosition | null; status: JobStatus } | null> {
    this.job.count("rpc.readLogChunksWhenMoved");
    const deadline = Date.now() + Math.min(Math.max(0, timeoutMs), MAX_WAIT_MS);
    for (;;) {
      const state = this.job.peek();
      if (!state) return null;
      const { chunks, next } = this.job.logs.after(pos);
      const left = deadline - Date.now();
      if (JSON.stringify(next) !== JSON.stringify(pos) || state.status !== status || left <= 0) {
        return { text: chunks.join(""), next, status: state.status };
      }
      await this.waits.next(left);
    }
  }

  // ---- alarm: deadlines and outbox retries ----------------------------------------------------

  override async alarm(): Promise<void> {
    const s = this.look("alarm");
    // Final, past retention and owing nothing (every ledger write and the archive done, nothing
    // parked): the storage goes (the ledger row and R2 archive remain), so no sweep lists old jobs.
    if (s && dueDeadline(s, this.job.config, this.job.now())?.kind === "purge" && this.job.outbox.size() === 0) {
      log("info", "job storage deleted after retention", { jobId: s.id, status: s.status });
      await this.job.deleteAll(true);
      return;
    }
    await checkDeadlines(this.job);
    await this.afterChange();
  }

  /** Sentinel: re-runs the deadline checks (in case an alarm was missed) and re-arms the alarm. */
  async sentinelCheck(offlineAgents: string[]): Promise<JobStatus | null> {
    const s = this.enter("sentinelCheck");
    if (!s) return null;
    holderOffline(this.job, s, offlineAgents);
    await checkDeadlines(this.job);
    await this.afterChange();
    const after = this.job.peek();
    // A job waiting this long may have missed its offer (a lost message, a backoff): offer it again.
    const waited = after?.status === "QUEUED" && after.queuedAt !== null ? this.job.now() - after.queuedAt : 0;
    if (waited >= REOFFER_AFTER_MS) await this.redeliver();
    return this.job.peek()?.status ?? null;
  }
}
