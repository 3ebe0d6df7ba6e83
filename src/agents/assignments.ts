// The registry's bookkeeping in its own SQLite table `assignments`: jobs waiting for an agent,
// and jobs offered to or running on an agent. It survives hibernation; sockets' identities live in attachments.
// Which agent holds which job is also kept in memory (read once when the object starts; the
// registry is the table's only writer), so loads cost no query; waiting jobs are read a page at a
// time in queue order through an index, and specs are parsed once per attempt (bounded cache).
// An agent that turns an offer down for a passing reason (busy, stopped, its socket dropped) is
// only backed off for that job; only a permanent reason excludes it (see matching.ts).
import type { ExecutionSpec } from "../../protocol/index.ts";
import { type Backoff, offerBackoffMs, type PendingJob, rejectIsPermanent } from "./matching.ts";

export interface Assignment extends PendingJob {
  agentId: string;
  state: "offered" | "running";
  deadline: number;
}

/** Waiting jobs read per page: the dispatcher usually stops after a few (every agent full). */
export const PENDING_PAGE = 16;
/** Parsed specs kept: the head of the queue is parsed once, not on every pass. */
const SPEC_CACHE = 256;

/** Where a walk of the queue stopped: the next page starts after this row. */
export interface QueueMark {
  queuedAt: number;
  rowid: number;
}

type Row = {
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

export type OfferFailure = { kind: "refused" | "timeout" | "closed"; reason?: string };

const specs = new Map<string, { json: string; spec: ExecutionSpec }>();

export class AssignmentBook {
  private readonly sql: SqlStorage;
  /** Job → the agent it is offered to or runs on; and per agent, those jobs. */
  private readonly holder = new Map<string, string>();
  private readonly held = new Map<string, Set<string>>();

  constructor(sql: SqlStorage) {
    this.sql = sql;
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
    // The queue walk, the alarm's minimum and a finished job's backoff lift read only what they need.
    sql.exec("CREATE INDEX IF NOT EXISTS assignments_queue ON assignments (state, queued_at)");
    sql.exec("CREATE INDEX IF NOT EXISTS assignments_deadline ON assignments (state, deadline)");
    sql.exec("CREATE INDEX IF NOT EXISTS assignments_wake ON assignments (state, wake_at)");
    sql.exec("CREATE INDEX IF NOT EXISTS assignments_agent ON assignments (agent_id)");
    sql.exec("CREATE INDEX IF NOT EXISTS assignments_backoff ON assignments (job_id) WHERE backoff <> '{}'");
    for (const r of sql.exec<{ job_id: string; agent_id: string }>(
      "SELECT job_id, agent_id FROM assignments WHERE agent_id IS NOT NULL",
    ))
      this.hold(r.job_id, r.agent_id);
  }

  /** Keeps the in-memory holders in step with a write that set the row's agent (null: none). */
  private hold(jobId: string, agentId: string | null): void {
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

  /** A spec parsed once per attempt (the text compared, so a changed row is parsed again). */
  private static spec(r: Row): ExecutionSpec {
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

  private static toPending(r: Row): PendingJob {
    return {
      jobId: r.job_id,
      attempt: r.attempt,
      leaseToken: r.lease_token,
      spec: AssignmentBook.spec(r),
      excluded: JSON.parse(r.banned) as Record<string, string>,
      backoff: JSON.parse(r.backoff) as Record<string, Backoff>,
      notice: r.notice,
    };
  }

  private static toAssignment(r: Row): Assignment {
    return {
      ...AssignmentBook.toPending(r),
      agentId: r.agent_id ?? "",
      state: r.state as Assignment["state"],
      deadline: r.deadline,
    };
  }

  /**
   * Adds a job waiting for an agent, or replaces an older attempt. The same attempt again (a
   * redispatch, the Sentinel) keeps an outstanding offer or a running job, and lifts the
   * backoffs so it is offered at once; permanent exclusions stay.
   */
  addPending(spec: ExecutionSpec, leaseToken: string): void {
    const existing = this.get(spec.jobId);
    if (existing && existing.attempt === spec.attempt && existing.leaseToken === leaseToken) {
      this.sql.exec("UPDATE assignments SET backoff = '{}', wake_at = 0 WHERE job_id = ?", spec.jobId);
      return;
    }
    // The upsert below leaves a newer attempt alone; anything else is now waiting, held by no one.
    if (!existing || spec.attempt >= existing.attempt) this.hold(spec.jobId, null);
    this.sql.exec(
      `INSERT INTO assignments (job_id, attempt, lease_token, spec_json, state, queued_at) VALUES (?, ?, ?, ?, 'pending', ?)
       ON CONFLICT(job_id) DO UPDATE SET attempt = excluded.attempt, lease_token = excluded.lease_token,
         spec_json = excluded.spec_json, banned = '{}', backoff = '{}', wake_at = 0, notice = NULL,
         agent_id = NULL, state = 'pending', deadline = 0
       WHERE excluded.attempt >= assignments.attempt`,
      spec.jobId,
      spec.attempt,
      leaseToken,
      JSON.stringify(spec),
      Date.now(),
    );
  }

  get(jobId: string): (Assignment | (PendingJob & { state: "pending" })) | undefined {
    const r = this.sql.exec<Row>("SELECT * FROM assignments WHERE job_id = ?", jobId).toArray()[0];
    if (!r) return undefined;
    return r.state === "pending"
      ? { ...AssignmentBook.toPending(r), state: "pending" }
      : AssignmentBook.toAssignment(r);
  }

  /** Every waiting job, oldest first (for a change in the connected agents, not per event). */
  *pending(): Generator<PendingJob> {
    let mark: QueueMark | null = null;
    for (;;) {
      const page = this.pendingPage(mark);
      for (const { job } of page) yield job;
      const last = page.at(-1);
      if (!last || page.length < PENDING_PAGE) return;
      mark = last.mark;
    }
  }

  /** Up to `limit` waiting jobs in queue order, after `mark` (from the head when null). */
  pendingPage(mark: QueueMark | null, limit = PENDING_PAGE): { job: PendingJob; mark: QueueMark }[] {
    const rows = mark
      ? this.sql.exec<Row>(
          `SELECT *, rowid FROM assignments WHERE state = 'pending' AND (queued_at, rowid) > (?, ?)
           ORDER BY queued_at, rowid LIMIT ?`,
          mark.queuedAt,
          mark.rowid,
          limit,
        )
      : this.sql.exec<Row>(
          "SELECT *, rowid FROM assignments WHERE state = 'pending' ORDER BY queued_at, rowid LIMIT ?",
          limit,
        );
    return rows
      .toArray()
      .map((r) => ({ job: AssignmentBook.toPending(r), mark: { queuedAt: r.queued_at, rowid: r.rowid } }));
  }

  ofAgent(agentId: string): Assignment[] {
    if (!this.held.has(agentId)) return [];
    return this.sql
      .exec<Row>("SELECT * FROM assignments WHERE agent_id = ?", agentId)
      .toArray()
      .map(AssignmentBook.toAssignment);
  }

  /** Jobs offered to or running on the agent (from memory). */
  loadOf(agentId: string): number {
    return this.held.get(agentId)?.size ?? 0;
  }

  offer(jobId: string, agentId: string, deadline: number): void {
    const c = this.sql.exec(
      "UPDATE assignments SET agent_id = ?, state = 'offered', deadline = ? WHERE job_id = ?",
      agentId,
      deadline,
      jobId,
    );
    if (c.rowsWritten > 0) this.hold(jobId, agentId);
  }

  /** The lease the job granted for this offer: its token is the one the agent will send. */
  setLeaseToken(jobId: string, leaseToken: string): void {
    this.sql.exec("UPDATE assignments SET lease_token = ? WHERE job_id = ?", leaseToken, jobId);
  }

  markRunning(jobId: string, agentId: string, attempt: number, leaseToken: string): void {
    const c = this.sql.exec(
      "UPDATE assignments SET agent_id = ?, state = 'running', deadline = 0, attempt = ?, lease_token = ?, backoff = '{}' WHERE job_id = ?",
      agentId,
      attempt,
      leaseToken,
      jobId,
    );
    if (c.rowsWritten > 0) this.hold(jobId, agentId);
  }

  /**
   * The offer to `agentId` failed: back to pending. A passing failure backs that agent off for
   * this job (longer each time); a permanent refusal excludes it from this attempt.
   */
  offerFailed(jobId: string, agentId: string, failure: OfferFailure, now = Date.now()): void {
    const r = this.get(jobId);
    if (!r) return;
    const excluded = { ...r.excluded };
    const backoff = { ...r.backoff };
    if (failure.kind === "refused" && failure.reason !== undefined && rejectIsPermanent(failure.reason)) {
      excluded[agentId] = failure.reason.slice(0, 300);
    } else {
      const failures = (backoff[agentId]?.failures ?? 0) + 1;
      backoff[agentId] = { until: now + offerBackoffMs(failures), failures };
    }
    const wakeAt = Math.min(...Object.values(backoff).map((b) => (b.until > now ? b.until : Infinity)));
    this.sql.exec(
      "UPDATE assignments SET agent_id = NULL, state = 'pending', deadline = 0, banned = ?, backoff = ?, wake_at = ? WHERE job_id = ?",
      JSON.stringify(excluded),
      JSON.stringify(backoff),
      Number.isFinite(wakeAt) ? wakeAt : 0,
      jobId,
    );
    this.hold(jobId, null);
  }

  /** The agent freed a slot (a job finished, it reconnected): its backoffs end now, their counts stay. */
  liftBackoffs(agentId: string): void {
    for (const r of this.sql
      .exec<Row>("SELECT * FROM assignments INDEXED BY assignments_backoff WHERE backoff <> '{}' AND state = 'pending'")
      .toArray()) {
      const backoff = JSON.parse(r.backoff) as Record<string, Backoff>;
      const mine = backoff[agentId];
      if (!mine || mine.until === 0) continue;
      backoff[agentId] = { ...mine, until: 0 };
      this.sql.exec("UPDATE assignments SET backoff = ? WHERE job_id = ?", JSON.stringify(backoff), r.job_id);
    }
  }

  setNotice(jobId: string, notice: string | null): void {
    this.sql.exec("UPDATE assignments SET notice = ? WHERE job_id = ?", notice, jobId);
  }

  remove(jobId: string): void {
    this.sql.exec("DELETE FROM assignments WHERE job_id = ?", jobId);
    this.hold(jobId, null);
  }

  expiredOffers(now: number): Assignment[] {
    return this.sql
      .exec<Row>("SELECT * FROM assignments WHERE state = 'offered' AND deadline <= ?", now)
      .toArray()
      .map(AssignmentBook.toAssignment);
  }

  /** The next offer deadline or backoff end: the registry's alarm. */
  nextDeadline(now = Date.now()): number | null {
    // Each MIN walks its index from the low end: a row or two, however long the queue.
    const offer = this.sql
      .exec<{ d: number | null }>("SELECT MIN(deadline) AS d FROM assignments WHERE state = 'offered'")
      .one().d;
    const wake = this.sql
      .exec<{ d: number | null }>(
        "SELECT MIN(wake_at) AS d FROM assignments WHERE state = 'pending' AND wake_at > ?",
        now,
      )
      .one().d;
    return offer === null ? wake : wake === null ? offer : Math.min(offer, wake);
  }
}
