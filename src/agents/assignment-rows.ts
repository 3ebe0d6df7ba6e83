// The `assignments` table under the registry's AssignmentBook: its schema (created, renamed and
// widened in place), its rows as the dispatcher reads them (each spec parsed once per attempt), and
// which agent holds which job, kept in memory beside it.
import type { ExecutionSpec } from "../../protocol/index.ts";
import type { Backoff, PendingJob } from "./matching.ts";

export interface Assignment extends PendingJob {
  agentId: string;
  state: "offered" | "running";
  deadline: number;
}

export type Row = {
  job_id: string;
  attempt: number;
  lease_token: string;
  spec_json: string;
  banned: string;
  backoff: string;
  notice: string | null;
  agent_id: string | null;
  state: string;
  deadline: number;
  queued_at: number;
  rowid: number;
};

/** Creates the table, or brings an older one up to date, and its indexes. */
export function openTable(sql: SqlStorage): void {
  // Named `jobs` before, like the ledger's D1 table: renamed in place, its rows kept.
  const tables = sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'").toArray();
  if (tables.some((t) => t.name === "jobs") && !tables.some((t) => t.name === "assignments"))
    sql.exec("ALTER TABLE jobs RENAME TO assignments");
  sql.exec(`CREATE TABLE IF NOT EXISTS assignments (
    job_id TEXT PRIMARY KEY, attempt INTEGER NOT NULL, lease_token TEXT NOT NULL, spec_json TEXT NOT NULL,
    rejected_by TEXT NOT NULL DEFAULT '[]', agent_id TEXT, state TEXT NOT NULL, deadline INTEGER NOT NULL DEFAULT 0,
    queued_at INTEGER NOT NULL)`);
  // Columns added after the first release (rejected_by, a permanent ban for any refusal, is no longer read).
  const have = new Set(
    sql
      .exec<{ name: string }>("PRAGMA table_info(assignments)")
      .toArray()
      .map((c) => c.name),
  );
  const add: [string, string][] = [
    ["banned", "TEXT NOT NULL DEFAULT '{}'"],
    ["backoff", "TEXT NOT NULL DEFAULT '{}'"],
    ["wake_at", "INTEGER NOT NULL DEFAULT 0"],
    ["notice", "TEXT"],
  ];
  for (const [name, type] of add) if (!have.has(name)) sql.exec(`ALTER TABLE assignments ADD COLUMN ${name} ${type}`);
  // The queue walk, the alarm's minimums, an agent's jobs and a freed agent's backoff lift read
  // only the rows they need, however long the queue.
  sql.exec("CREATE INDEX IF NOT EXISTS assignments_queue ON assignments (state, queued_at)");
  sql.exec("CREATE INDEX IF NOT EXISTS assignments_deadline ON assignments (state, deadline)");
  sql.exec("CREATE INDEX IF NOT EXISTS assignments_wake ON assignments (state, wake_at)");
  sql.exec("CREATE INDEX IF NOT EXISTS assignments_agent ON assignments (agent_id)");
  sql.exec("CREATE INDEX IF NOT EXISTS assignments_backoff ON assignments (job_id) WHERE backoff <> '{}'");
}

/** Parsed specs kept: the head of the queue is parsed once, not on every pass. */
const SPEC_CACHE = 256;
const specs = new Map<string, { json: string; spec: ExecutionSpec }>();

/** A spec parsed once per attempt (the text compared, so a changed row is parsed again). */
function specOf(r: Row): ExecutionSpec {
  const key = `${r.job_id}#${r.attempt}`;
  const hit = specs.get(key);
  if (hit?.json === r.spec_json) return hit.spec;
  const spec = JSON.parse(r.spec_json) as ExecutionSpec;
  specs.delete(key);
  if (specs.size >= SPEC_CACHE) {
    const oldest = specs.keys().next().value;
    if (oldest !== undefined) specs.delete(oldest);
  }
  specs.set(key, { json: r.spec_json, spec });
  return spec;
}

export function toPending(r: Row): PendingJob {
  return {
    jobId: r.job_id,
    attempt: r.attempt,
    leaseToken: r.lease_token,
    spec: specOf(r),
    excluded: JSON.parse(r.banned) as Record<string, string>,
    backoff: JSON.parse(r.backoff) as Record<string, Backoff>,
    notice: r.notice,
  };
}

export function toAssignment(r: Row): Assignment {
  return {
    ...toPending(r),
    agentId: r.agent_id ?? "",
    state: r.state as Assignment["state"],
    deadline: r.deadline,
  };
}

/**
 * Which agent each offered or running job is with, and how many each agent holds. The registry
 * is the table's only writer: read once when the object starts, then set beside every write.
 */
export class Holders {
  private readonly holder = new Map<string, string>();
  private readonly held = new Map<string, Set<string>>();

  constructor(sql: SqlStorage) {
    for (const r of sql.exec<{ job_id: string; agent_id: string }>(
      "SELECT job_id, agent_id FROM assignments WHERE agent_id IS NOT NULL",
    ))
      this.set(r.job_id, r.agent_id);
  }

  count(agentId: string): number {
    return this.held.get(agentId)?.size ?? 0;
  }

  /** The job is now with `agentId` (null: with no one, or gone). */
  set(jobId: string, agentId: string | null): void {
    const before = this.holder.get(jobId);
    if (before === agentId) return;
    if (before !== undefined) {
      this.holder.delete(jobId);
      const set = this.held.get(before);
      set?.delete(jobId);
      if (set?.size === 0) this.held.delete(before);
    }
    if (agentId === null) return;
    this.holder.set(jobId, agentId);
    let set = this.held.get(agentId);
    if (!set) {
      set = new Set();
      this.held.set(agentId, set);
    }
    set.add(jobId);
  }
}
