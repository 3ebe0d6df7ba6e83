// The registry's bookkeeping in its own SQLite table `assignments`: jobs waiting for an agent,
// and jobs offered to or running on an agent. It survives hibernation; sockets' identities live in attachments.
// An agent that turns an offer down for a passing reason (busy, stopped, its socket dropped) is
// only backed off for that job; only a permanent reason excludes it (see matching.ts).
import type { ExecutionSpec } from "../../protocol/index.ts";
import { type Backoff, offerBackoffMs, type PendingJob, rejectIsPermanent } from "./matching.ts";

export interface Assignment extends PendingJob {
  agentId: string;
  state: "offered" | "running";
  deadline: number;
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
};

export type OfferFailure = { kind: "refused" | "timeout" | "closed"; reason?: string };

export class AssignmentBook {
  private readonly sql: SqlStorage;

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
  }

  private static toPending(r: Row): PendingJob {
    return {
      jobId: r.job_id,
      attempt: r.attempt,
      leaseToken: r.lease_token,
      spec: JSON.parse(r.spec_json) as ExecutionSpec,
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

  /**
   * Waiting jobs, oldest first. Rows are read up front (the caller updates the table while it
   * walks them) and parsed only when reached: the caller stops once no agent has a free slot.
   */
  *pending(): Generator<PendingJob> {
    const rows = this.sql.exec<Row>("SELECT * FROM assignments WHERE state = 'pending' ORDER BY queued_at").toArray();
    for (const row of rows) yield AssignmentBook.toPending(row);
  }

  /** Jobs held (offered or running) per agent, in one query. */
  loads(): Map<string, number> {
    const rows = this.sql
      .exec<{ agent_id: string; c: number }>(
        "SELECT agent_id, COUNT(*) AS c FROM assignments WHERE agent_id IS NOT NULL GROUP BY agent_id",
      )
      .toArray();
    return new Map(rows.map((r) => [r.agent_id, r.c]));
  }

  ofAgent(agentId: string): Assignment[] {
    return this.sql
      .exec<Row>("SELECT * FROM assignments WHERE agent_id = ?", agentId)
      .toArray()
      .map(AssignmentBook.toAssignment);
  }

  loadOf(agentId: string): number {
    return this.sql.exec<{ c: number }>("SELECT COUNT(*) AS c FROM assignments WHERE agent_id = ?", agentId).one().c;
  }

  offer(jobId: string, agentId: string, deadline: number): void {
    this.sql.exec(
      "UPDATE assignments SET agent_id = ?, state = 'offered', deadline = ? WHERE job_id = ?",
      agentId,
      deadline,
      jobId,
    );
  }

  /** The lease the job granted for this offer: its token is the one the agent will send. */
  setLeaseToken(jobId: string, leaseToken: string): void {
    this.sql.exec("UPDATE assignments SET lease_token = ? WHERE job_id = ?", leaseToken, jobId);
  }

  markRunning(jobId: string, agentId: string, attempt: number, leaseToken: string): void {
    this.sql.exec(
      "UPDATE assignments SET agent_id = ?, state = 'running', deadline = 0, attempt = ?, lease_token = ?, backoff = '{}' WHERE job_id = ?",
      agentId,
      attempt,
      leaseToken,
      jobId,
    );
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
  }

  /** The agent freed a slot (a job finished, it reconnected): its backoffs end now, their counts stay. */
  liftBackoffs(agentId: string): void {
    for (const r of this.sql
      .exec<Row>("SELECT * FROM assignments WHERE state = 'pending' AND backoff <> '{}'")
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
  }

  expiredOffers(now: number): Assignment[] {
    return this.sql
      .exec<Row>("SELECT * FROM assignments WHERE state = 'offered' AND deadline <= ?", now)
      .toArray()
      .map(AssignmentBook.toAssignment);
  }

  /** The next offer deadline or backoff end: the registry's alarm. */
  nextDeadline(now = Date.now()): number | null {
    return this.sql
      .exec<{ d: number | null }>(
        `SELECT MIN(d) AS d FROM (
           SELECT MIN(deadline) AS d FROM assignments WHERE state = 'offered'
           UNION ALL SELECT MIN(wake_at) AS d FROM assignments WHERE state = 'pending' AND wake_at > ?)`,
        now,
      )
      .one().d;
  }
}
