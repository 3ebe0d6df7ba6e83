// The JobContext of one JobDO over its storage: the state under key "job", the outbox and the
// log in its SQLite, the operation counters, the memos. Only this module writes "job".
import type { Config } from "../config.ts";
import type { JobEvent } from "../core/job-machine.ts";
import { redactorFor } from "../lib/redact.ts";
import { type JobContext, LIVENESS_FIELDS, type LivenessPatch, type MemoKey } from "./job-context.ts";
import type { JobState } from "./job-state.ts";
import { LogBuffer } from "./log-buffer.ts";
import { Outbox, type OutboxItem } from "./outbox.ts";
import { move } from "./transitions.ts";

export class JobStore implements JobContext {
  readonly config: Config;
  private readonly bindings: () => Env;
  private readonly storage: DurableObjectStorage;
  private readonly onCommit: () => void;
  // Created on first use: a job whose storage was deleted after retention is not given empty
  // tables again by a later read (a status lookup, a stray agent message).
  private logBuffer: LogBuffer | null = null;
  private outboxTable: Outbox | null = null;
  /** Operation counts not yet stored: they are saved with the next state commit (no extra write). */
  private readonly unsavedOps = new Map<string, number>();

  /** `bindings` reads the object's env at each use (tests swap a binding for a failing one). */
  constructor(storage: DurableObjectStorage, bindings: () => Env, config: Config, onCommit: () => void) {
    this.storage = storage;
    this.bindings = bindings;
    this.config = config;
    this.onCommit = onCommit;
  }

  get env(): Env {
    return this.bindings();
  }

  get logs(): LogBuffer {
    this.logBuffer ??= new LogBuffer(this.storage.sql, redactorFor(this.env));
    return this.logBuffer;
  }

  get outbox(): Outbox {
    this.outboxTable ??= new Outbox(this.storage.sql);
    return this.outboxTable;
  }

  now(): number {
    return Date.now();
  }

  load(): JobState | undefined {
    return this.storage.kv.get<JobState>("job");
  }

  commit(state: JobState, effects: OutboxItem[] = []): void {
    state.updatedAt = this.now();
    this.storage.transactionSync(() => {
      this.saveOps();
      this.storage.kv.put("job", state);
      this.outbox.add({ kind: "ledger" });
      for (const e of effects) this.outbox.add(e);
    });
    this.onCommit();
  }

  saveLiveness(patch: LivenessPatch): void {
    const stored = this.load();
    if (!stored) return;
    // Field by field: a whole JobState passed here (it type-checks as a patch) saves only these.
    for (const key of LIVENESS_FIELDS) if (patch[key] !== undefined) Object.assign(stored, { [key]: patch[key] });
    this.storage.kv.put("job", stored);
  }

  move(state: JobState, event: JobEvent, detail: Record<string, unknown> | null = null): OutboxItem[] {
    return move(state, event, detail, this.now());
  }

  count(kind: string): void {
    this.unsavedOps.set(kind, (this.unsavedOps.get(kind) ?? 0) + 1);
  }

  memo<T>(key: MemoKey): T | undefined {
    return this.storage.kv.get<T>(key);
  }

  setMemo(key: MemoKey, value: unknown): void {
    this.storage.kv.put(key, value);
  }

  /** The operation counts (GET /api/jobs/:id/ops), unsaved ones included. */
  opCounts(): Record<string, number> {
    this.saveOps();
    this.createOpCounts();
    const rows = this.storage.sql.exec<{ kind: string; n: number }>("SELECT kind, n FROM op_counts").toArray();
    return Object.fromEntries(rows.map((r) => [r.kind, r.n]));
  }

  private saveOps(): void {
    if (this.unsavedOps.size === 0) return;
    this.createOpCounts();
    for (const [kind, n] of this.unsavedOps) {
      this.storage.sql.exec(
        "INSERT INTO op_counts (kind, n) VALUES (?, ?) ON CONFLICT(kind) DO UPDATE SET n = n + excluded.n",
        kind,
        n,
      );
    }
    this.unsavedOps.clear();
  }

  private createOpCounts(): void {
    this.storage.sql.exec("CREATE TABLE IF NOT EXISTS op_counts (kind TEXT PRIMARY KEY, n INTEGER NOT NULL)");
  }
}
