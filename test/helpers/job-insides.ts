// The one way tests reach a JobDO's insides — its JobContext, its drain, its storage, its env —
// which the object keeps private so that no production module can.
import { env, runInDurableObject } from "cloudflare:test";
import type { JobView } from "../../protocol/index.ts";
import { loadConfig } from "../../src/config.ts";
import type { JobEvent } from "../../src/core/job-machine.ts";
import { OutboxDrain } from "../../src/jobs/drain.ts";
import type { CreateJobInput, JobDO } from "../../src/jobs/job-do.ts";
import type { JobState } from "../../src/jobs/job-state.ts";
import { JobStore } from "../../src/jobs/job-store.ts";
import type { LogBuffer } from "../../src/jobs/log-buffer.ts";
import type { Outbox } from "../../src/jobs/outbox.ts";
import type { OutboxItem } from "../../src/jobs/outbox-items.ts";
import { planJob } from "../../src/jobs/planning.ts";

interface Private {
  job: JobStore;
  drain: OutboxDrain;
  ctx: DurableObjectState;
  env: Env;
  afterChange(): Promise<void>;
  settled: Promise<void>;
  start(input: CreateJobInput, then: (state: JobState) => OutboxItem[]): Promise<JobView>;
}

export interface JobInsides {
  readonly ctx: DurableObjectState;
  /** The object's bindings (a test may replace them with Object.defineProperty(i, "env", …)). */
  readonly env: Env;
  readonly outbox: Outbox;
  readonly logs: LogBuffer;
  load(): JobState | undefined;
  /** Overwrites the stored state as is (no commit, no effects), as a test's setup. */
  save(state: JobState): void;
  commit(state: JobState, effects?: OutboxItem[]): void;
  move(state: JobState, event: JobEvent, detail?: Record<string, unknown> | null): OutboxItem[];
  /**
   * Creates the job as a task the rules cannot read whole would be: CREATED, its planning left
   * to the alarm (which plans "check git status" all the same), so a test can act before it.
   */
  createUnplanned(input: CreateJobInput): Promise<JobView>;
  /** Plans the job as its alarm would. */
  plan(state: JobState): Promise<void>;
  drain(): Promise<void>;
  /**
   * Forgets everything the object holds in memory, as an eviction or restart would: a new
   * JobStore and drain over the same storage (what was only staged or done in memory is lost).
   */
  restart(): void;
  /** Work an answer left running (the create's drain), settled. */
  readonly settled: Promise<void>;
  /** Drains and re-arms as after a change, and waits for a drain left running by an earlier answer. */
  afterChange(): Promise<void>;
}

export function insides(i: JobDO): JobInsides {
  const o = i as unknown as Private;
  return {
    ctx: o.ctx,
    get env() {
      return o.env;
    },
    get outbox() {
      return o.job.outbox;
    },
    get logs() {
      return o.job.logs;
    },
    load: () => o.job.load(),
    save: (state) => o.job.overwrite(state),
    commit: (state, effects) => o.job.commit(state, effects),
    move: (state, event, detail) => o.job.move(state, event, detail),
    plan: (state) => planJob(o.job, state),
    createUnplanned: (input) => o.start.call(i, input, () => []),
    drain: () => o.drain.run(o.job),
    restart: () => {
      const drain = new OutboxDrain();
      o.drain = drain;
      o.job = new JobStore(
        o.ctx.storage,
        () => o.env,
        loadConfig(o.env),
        () => drain.committed(),
      );
    },
    get settled() {
      return o.settled;
    },
    afterChange: async () => {
      await o.afterChange.call(i);
      await o.settled;
    },
  };
}

/**
 * Replaces some of the bindings the object of job `jobId` uses (it is created empty if the job is
 * not yet); the returned function puts the real ones back.
 */
export async function patchEnv(jobId: string, patch: (real: Env) => Partial<Env>): Promise<() => Promise<void>> {
  const stub = env.JOB.get(env.JOB.idFromName(jobId));
  const real = await runInDurableObject(stub, (i: JobDO) => {
    const original = insides(i).env;
    Object.defineProperty(i, "env", { value: { ...original, ...patch(original) }, configurable: true });
    return original;
  });
  return () =>
    runInDurableObject(stub, (i: JobDO) => {
      Object.defineProperty(i, "env", { value: real, configurable: true });
    });
}

/** Marks every item the outbox owes now as done, as a drain that performed them would (no effect runs). */
export function performAll(store: { readonly outbox: Outbox }): void {
  for (const row of store.outbox.due(Date.now(), 10_000)) store.outbox.done(row);
  store.outbox.settle(false);
}

/** The kinds of the items each batch on the stored state record holds (what a restart would find). */
export function owedOnRecord(storage: DurableObjectStorage): string[][] {
  const record = storage.kv.get<{ owed?: { items: ({ kind: string } | null)[] }[] }>("job");
  return (record?.owed ?? []).map((b) => b.items.flatMap((i) => (i ? [i.kind] : [])));
}

/** The job's log text as stored (the record's rows while small, else the table's), not redacted again on the way out. */
export function storedLog(storage: DurableObjectStorage): string {
  const record = storage.kv.get<{ log?: { data: string }[] }>("job");
  if (record?.log) return record.log.map((r) => r.data).join("");
  return [...storage.sql.exec<{ data: string }>("SELECT data FROM log_chunks ORDER BY attempt, seq")]
    .map((r) => r.data)
    .join("");
}

/** A JobStore over `storage` as a JobDO builds one (this test env, its config), `onCommit` after each commit. */
export function storeOver(storage: DurableObjectStorage, onCommit: () => void = () => undefined): JobStore {
  return new JobStore(storage, () => env, loadConfig(env), onCommit);
}
