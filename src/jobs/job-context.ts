// The narrow view of one job that the JobDO hands its helper modules (agent events, planning,
// deadlines, effects, the answer) instead of itself: they read and save the job's state, apply
// state-machine events, queue effects and append logs, and nothing else of the object.

import type { Config } from "../config.ts";
import type { JobEvent } from "../core/job-machine.ts";
import type { JobState } from "./job-state.ts";
import type { LogBuffer } from "./log-buffer.ts";
import type { Outbox } from "./outbox.ts";
import type { OutboxItem } from "./outbox-items.ts";

/**
 * The fields that may be saved without a state commit (see JobContext.saveLiveness): the lease's
 * liveness and the planning marks — nothing the ledger row, the requester or the state machine sees.
 */
export const LIVENESS_FIELDS = [
  "lease",
  "withoutJobAt",
  "planningStarted",
  "planningStartedAt",
  "planAttempts",
] as const satisfies readonly (keyof JobState)[];
export type LivenessPatch = Partial<Pick<JobState, (typeof LIVENESS_FIELDS)[number]>>;

/** Small values a job remembers beside its state: the last ledger snapshot written, the Telegram memo. */
export type MemoKey = "ledger_written" | "notify";

export interface JobContext {
  readonly env: Env;
  readonly config: Config;
  readonly logs: LogBuffer;
  readonly outbox: Outbox;
  /** The clock every deadline and timestamp of the job is read from. */
  now(): number;
  /** The job's state, a copy the caller may change and commit. */
  load(): JobState | undefined;
  /** The job's state for reading only (frozen: no copy is made, and a change throws). */
  peek(): Readonly<JobState> | undefined;
  /**
   * THE way to save a change of the job: state, a ledger snapshot and `effects` in one storage
   * transaction. Use it for anything the ledger, the requester or the state machine may see.
   */
  commit(state: JobState, effects?: OutboxItem[]): void;
  /**
   * The one exception, for the hot path (every agent message and heartbeat renews the lease):
   * saves only the fields of LivenessPatch onto the stored state, with no ledger write. The type
   * refuses other fields, and any other field of the object passed is ignored.
   */
  saveLiveness(patch: LivenessPatch): void;
  /**
   * Keeps `state` in memory as the job's state, unstored: the record's next write (a commit, or
   * the outbox dropping done items) stores it. Only for a change that may be lost in a crash
   * because something still owed redoes it (the hand-over mark, redone by its owed "enqueue").
   */
  stage(state: JobState): void;
  /**
   * Applies a state-machine event to `state` (throws on an illegal one); returns its effects.
   * `at` dates the event when it happened before now (an accept the agent held); default now.
   */
  move(state: JobState, event: JobEvent, detail?: Record<string, unknown> | null, at?: number): OutboxItem[];
  /** Counts one operation of the job (requests, effects performed): its cost basis. */
  count(kind: string): void;
  memo<T>(key: MemoKey): T | undefined;
  setMemo(key: MemoKey, value: unknown): void;
}
