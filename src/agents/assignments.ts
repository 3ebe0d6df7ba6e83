// The registry's bookkeeping in its own SQLite table `assignments`: jobs waiting for an agent,
// and jobs offered to or running on an agent. It survives hibernation; sockets' identities live in attachments.
// Loads come from memory (assignment-rows.ts); waiting jobs are read a page at a time in queue
// order through an index.
// An agent that turns an offer down for a passing reason (busy, stopped, its socket dropped) is
// only backed off for that job; only a permanent reason excludes it (see matching.ts).
import type { ExecutionSpec } from "../../protocol/index.ts";
import { type Assignment, Holders, openTable, type Row, toAssignment, toPending } from "./assignment-rows.ts";
import { type Backoff, offerBackoffMs, type PendingJob, rejectIsPermanent } from "./matching.ts";

/** Waiting jobs read per page: the dispatcher usually stops after a few (every agent full). */
export const PENDING_PAGE = 16;

/** Where a walk of the queue stopped: the next page starts after this row. */
export interface QueueMark {
  queuedAt: number;
  rowid: number;
}

export type OfferFailure = { kind: "refused" | "timeout" | "closed"; reason?: string };

export class AssignmentBook {
  private readonly sql: SqlStorage;
  /** Which agent holds which job, in memory: loads cost no query. */
  private readonly holders: Holders;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    openTable(sql);
    this.holders = new Holders(sql);
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
    if (!existing || spec.attempt >= existing.attempt) this.holders.set(spec.jobId, null);
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
    return r.state === "pending" ? { ...toPending(r), state: "pending" } : toAssignment(r);
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
    return rows.toArray().map((r) => ({ job: toPending(r), mark: { queuedAt: r.queued_at, rowid: r.rowid } }));
  }

  ofAgent(agentId: string): Assignment[] {
    if (this.holders.count(agentId) === 0) return [];
    return this.sql.exec<Row>("SELECT * FROM assignments WHERE agent_id = ?", agentId).toArray().map(toAssignment);
  }

  /** Jobs offered to or running on the agent (from memory). */
  loadOf(agentId: string): number {
    return this.holders.count(agentId);
  }

  offer(jobId: string, agentId: string, deadline: number): void {
    const c = this.sql.exec(
      "UPDATE assignments SET agent_id = ?, state = 'offered', deadline = ? WHERE job_id = ?",
      agentId,
      deadline,
      jobId,
    );
    if (c.rowsWritten > 0) this.holders.set(jobId, agentId);
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
    if (c.rowsWritten > 0) this.holders.set(jobId, agentId);
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
    this.holders.set(jobId, null);
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
    this.holders.set(jobId, null);
  }

  expiredOffers(now: number): Assignment[] {
    return this.sql
      .exec<Row>("SELECT * FROM assignments WHERE state = 'offered' AND deadline <= ?", now)
      .toArray()
      .map(toAssignment);
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
