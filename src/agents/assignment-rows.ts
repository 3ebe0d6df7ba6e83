// The `assignments` table under the registry's AssignmentBook: its schema (created, renamed and
// converted in place), and its rows as the dispatcher reads them (each spec parsed once per attempt).
//
// Rows written cost a thousand times rows read, and every index a job's row enters is a row
// written: the table is WITHOUT ROWID keyed by job_id (no separate key index), and each index
// is partial over the few rows it serves, so a job offered at once enters no index at all, and
// one that waits enters only the queue index while it waits. The jobs agents hold are read once,
// when the object starts, by a scan of this table of live jobs (migration: the holder index it
// had cost every offered job a row written). Offer deadlines are read from memory
// (assignment-cache.ts), not through an index.
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
  wake_at: number;
  notice: string | null;
  agent_id: string | null;
  state: string;
  deadline: number;
  queued_at: number;
};

const COLUMNS = [
  "job_id",
  "attempt",
  "lease_token",
  "spec_json",
  "banned",
  "backoff",
  "wake_at",
  "notice",
  "agent_id",
  "state",
  "deadline",
  "queued_at",
] as const satisfies readonly (keyof Row)[];

/** What a column added after the first release holds in an older table's rows. */
const LATER_DEFAULTS: Partial<Record<keyof Row, string>> = {
  banned: "'{}'",
  backoff: "'{}'",
  wake_at: "0",
  notice: "NULL",
};

const createSql = (name: string) => `CREATE TABLE ${name} (
  job_id TEXT NOT NULL PRIMARY KEY, attempt INTEGER NOT NULL, lease_token TEXT NOT NULL, spec_json TEXT NOT NULL,
  banned TEXT NOT NULL DEFAULT '{}', backoff TEXT NOT NULL DEFAULT '{}', wake_at INTEGER NOT NULL DEFAULT 0,
  notice TEXT, agent_id TEXT, state TEXT NOT NULL, deadline INTEGER NOT NULL DEFAULT 0, queued_at INTEGER NOT NULL
) WITHOUT ROWID`;

/** Creates the table, or converts an older one in place (its rows kept), and its indexes. */
export function openTable(sql: SqlStorage): void {
  const tables = sql.exec<{ name: string; sql: string }>("SELECT name, sql FROM sqlite_master WHERE type = 'table'");
  const byName = new Map(tables.toArray().map((t) => [t.name, t.sql]));
  // Named `jobs` in the first release, like the ledger's D1 table.
  const name = byName.has("assignments") ? "assignments" : byName.has("jobs") ? "jobs" : null;
  const ddl = name === null ? undefined : byName.get(name);
  if (name === null) sql.exec(createSql("assignments"));
  else if (!/WITHOUT\s+ROWID/i.test(ddl ?? "")) convert(sql, name);
  // The queue walk, the backoff wake-ups and the backoff lift: each partial, so a row enters an
  // index only while it is needed. The holder index of earlier releases goes (see above).
  sql.exec("CREATE INDEX IF NOT EXISTS assignments_waiting ON assignments (queued_at, job_id) WHERE state = 'pending'");
  sql.exec("CREATE INDEX IF NOT EXISTS assignments_waking ON assignments (wake_at) WHERE wake_at > 0");
  sql.exec("DROP INDEX IF EXISTS assignments_held");
  sql.exec("CREATE INDEX IF NOT EXISTS assignments_backed_off ON assignments (state) WHERE backoff <> '{}'");
}

/**
 * An older rowid table (and its five full indexes) becomes the WITHOUT ROWID one, rows copied:
 * the registry is one long-lived object, so its waiting and running jobs must survive. All in
 * one synchronous step, so it commits whole or not at all.
 */
function convert(sql: SqlStorage, from: string): void {
  const have = new Set(
    sql
      .exec<{ name: string }>(`PRAGMA table_info(${from})`)
      .toArray()
      .map((c) => c.name),
  );
  const select = COLUMNS.map((c) => (have.has(c) ? c : (LATER_DEFAULTS[c] ?? "NULL")));
  sql.exec("DROP TABLE IF EXISTS assignments_next");
  sql.exec(createSql("assignments_next"));
  sql.exec(`INSERT INTO assignments_next (${COLUMNS.join(", ")}) SELECT ${select.join(", ")} FROM ${from}`);
  sql.exec(`DROP TABLE ${from}`);
  sql.exec("ALTER TABLE assignments_next RENAME TO assignments");
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
