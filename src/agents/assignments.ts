// The registry's bookkeeping in its own SQLite table `assignments`: jobs waiting for an agent,
// and jobs offered to or running on an agent. It survives hibernation; sockets' identities live in attachments.
// Rows are read from memory where the book already has them (assignment-cache.ts) and each
// write sets only the columns whose value changed (no index is touched for nothing); waiting
// jobs are read a page at a time in queue order through a partial index.
// An agent that turns an offer down for a passing reason (busy, stopped, its socket dropped) is
// only backed off for that job; only a permanent reason excludes it (see matching.ts).
import type { ExecutionSpec } from "../../protocol/index.ts";
import { RowCache } from "./assignment-cache.ts";
import { type Assignment, openTable, type Row, toAssignment, toPending } from "./assignment-rows.ts";
import { type Backoff, offerBackoffMs, type PendingJob, rejectIsPermanent } from "./matching.ts";

/** Waiting jobs read per page: the dispatcher usually stops after a few (every agent full). */
export const PENDING_PAGE = 16;

/** Where a walk of the queue stopped: the next page starts after this row. */
export interface QueueMark {
  queuedAt: number;
  jobId: string;
}

export type OfferFailure = { kind: "refused" | "timeout" | "closed"; reason?: string };

type Patch = Partial<Omit<Row, "job_id">>;

/** A new attempt's row: waiting, with no agent, no ban and no back-off, unless `fields` say else. */
function newRow(spec: ExecutionSpec, leaseToken: string, fields: Patch): Row {
  return {
    job_id: spec.jobId,
    attempt: spec.attempt,
    lease_token: leaseToken,
    spec_json: JSON.stringify(spec),
    banned: "{}",
    backoff: "{}",
    wake_at: 0,
    notice: null,
    agent_id: null,
    state: "pending",
    deadline: 0,
    queued_at: Date.now(),
    ...fields,
  };
}

export class AssignmentBook {
  private readonly sql: SqlStorage;
  private readonly rows: RowCache;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    openTable(sql);
    this.rows = new RowCache(
      // Once per start, over live jobs only: no index, so an offer costs no index entry.
      sql.exec<Row>("SELECT * FROM assignments WHERE agent_id IS NOT NULL"),
    );
  }

  /**
   * Adds a job waiting for an agent, or replaces an older attempt. The same attempt again (a
   * redispatch, the Sentinel) keeps an outstanding offer or a running job, and lifts the
   * backoffs so it is offered at once; permanent exclusions stay. An older attempt changes nothing.
   */
  addPending(spec: ExecutionSpec, leaseToken: string): void {
    const existing = this.row(spec.jobId);
    // An entry whose offer ended keeps waiting for a new token (no token: dispatcher.ts): the one
    // the job sends again here may be the one that offer carried.
    const same = existing?.lease_token === leaseToken || existing?.lease_token === "";
    if (existing && existing.attempt === spec.attempt && same) {
      this.update(existing, { backoff: "{}", wake_at: 0 });
      return;
    }
    if (existing && spec.attempt < existing.attempt) return;
    // A newer attempt keeps its place in the queue.
    const r = newRow(spec, leaseToken, { queued_at: existing?.queued_at ?? Date.now() });
    this.sql.exec(
      `INSERT INTO assignments (job_id, attempt, lease_token, spec_json, state, queued_at) VALUES (?, ?, ?, ?, 'pending', ?)
       ON CONFLICT(job_id) DO UPDATE SET attempt = excluded.attempt, lease_token = excluded.lease_token,
         spec_json = excluded.spec_json, banned = '{}', backoff = '{}', wake_at = 0, notice = NULL,
         agent_id = NULL, state = 'pending', deadline = 0`,
      r.job_id,
      r.attempt,
      r.lease_token,
      r.spec_json,
      r.queued_at,
    );
    this.rows.set(r);
  }

  /**
   * A new attempt offered at once, with no other job waiting before it: its row goes in as an
   * offer (never entering the waiting queue's index). False, with nothing written, when the job
   * already has a row or any job waits (queue order: the caller queues it instead).
   */
  addOffered(spec: ExecutionSpec, leaseToken: string, agentId: string, deadline: number): boolean {
    if (this.row(spec.jobId) || this.anyWaiting()) return false;
    const r = newRow(spec, leaseToken, { agent_id: agentId, state: "offered", deadline });
    this.sql.exec(
      `INSERT INTO assignments (job_id, attempt, lease_token, spec_json, agent_id, state, deadline, queued_at)
       VALUES (?, ?, ?, ?, ?, 'offered', ?, ?)`,
      r.job_id,
      r.attempt,
      r.lease_token,
      r.spec_json,
      r.agent_id,
      r.deadline,
      r.queued_at,
    );
    this.rows.set(r);
    return true;
  }

  /** Whether any job waits for an agent (one row of the queue's index at most). */
  private anyWaiting(): boolean {
    return this.sql.exec("SELECT 1 FROM assignments WHERE state = 'pending' LIMIT 1").toArray().length > 0;
  }

  get(jobId: string): (Assignment | (PendingJob & { state: "pending" })) | undefined {
    const r = this.row(jobId);
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
          `SELECT * FROM assignments WHERE state = 'pending' AND (queued_at, job_id) > (?, ?)
           ORDER BY queued_at, job_id LIMIT ?`,
          mark.queuedAt,
          mark.jobId,
          limit,
        )
      : this.sql.exec<Row>(
          "SELECT * FROM assignments WHERE state = 'pending' ORDER BY queued_at, job_id LIMIT ?",
          limit,
        );
    return rows.toArray().map((r) => ({ job: toPending(r), mark: { queuedAt: r.queued_at, jobId: r.job_id } }));
  }

  /** Jobs offered to or running on the agent (from memory). */
  ofAgent(agentId: string): Assignment[] {
    return this.rows.ofAgent(agentId).map(toAssignment);
  }

  /** How many jobs are offered to or running on the agent (from memory). */
  loadOf(agentId: string): number {
    return this.rows.count(agentId);
  }

  offer(jobId: string, agentId: string, deadline: number): void {
    const r = this.row(jobId);
    if (r) this.update(r, { agent_id: agentId, state: "offered", deadline, wake_at: 0 });
  }

  /** The token the job minted for the next offer: the one the agent will send. */
  setLeaseToken(jobId: string, leaseToken: string): void {
    const r = this.row(jobId);
    if (r) this.update(r, { lease_token: leaseToken });
  }

  markRunning(jobId: string, agentId: string, attempt: number, leaseToken: string): void {
    const r = this.row(jobId);
    if (r)
      this.update(r, {
        agent_id: agentId,
        state: "running",
        deadline: 0,
        attempt,
        lease_token: leaseToken,
        backoff: "{}",
        wake_at: 0,
      });
  }

  /**
   * The offer to `agentId` failed: back to pending. A passing failure backs that agent off for
   * this job (longer each time); a permanent refusal excludes it from this attempt. The token
   * the offer carried is no longer the book's: the next offer goes under a new one.
   */
  offerFailed(jobId: string, agentId: string, failure: OfferFailure, now = Date.now()): void {
    const r = this.row(jobId);
    if (!r) return;
    const excluded = JSON.parse(r.banned) as Record<string, string>;
    const backoff = JSON.parse(r.backoff) as Record<string, Backoff>;
    if (failure.kind === "refused" && failure.reason !== undefined && rejectIsPermanent(failure.reason)) {
      excluded[agentId] = failure.reason.slice(0, 300);
    } else {
      const failures = (backoff[agentId]?.failures ?? 0) + 1;
      backoff[agentId] = { until: now + offerBackoffMs(failures), failures };
    }
    const wakeAt = Math.min(...Object.values(backoff).map((b) => (b.until > now ? b.until : Infinity)));
    this.update(r, {
      agent_id: null,
      state: "pending",
      deadline: 0,
      lease_token: "",
      banned: JSON.stringify(excluded),
      backoff: JSON.stringify(backoff),
      wake_at: Number.isFinite(wakeAt) ? wakeAt : 0,
    });
  }

  /** The agent freed a slot (a job finished, it reconnected): its backoffs end now, their counts stay. */
  liftBackoffs(agentId: string): void {
    for (const r of this.sql
      .exec<Row>(
        "SELECT * FROM assignments INDEXED BY assignments_backed_off WHERE backoff <> '{}' AND state = 'pending'",
      )
      .toArray()) {
      const backoff = JSON.parse(r.backoff) as Record<string, Backoff>;
      const mine = backoff[agentId];
      if (!mine || mine.until === 0) continue;
      backoff[agentId] = { ...mine, until: 0 };
      this.update(r, { backoff: JSON.stringify(backoff) });
    }
  }

  setNotice(jobId: string, notice: string | null): void {
    const r = this.row(jobId);
    if (r) this.update(r, { notice });
  }

  remove(jobId: string): void {
    this.sql.exec("DELETE FROM assignments WHERE job_id = ?", jobId);
    this.rows.delete(jobId);
  }

  expiredOffers(now: number): Assignment[] {
    return this.rows
      .offers()
      .filter((r) => r.deadline <= now)
      .map(toAssignment);
  }

  /** The next offer deadline or backoff end: the registry's alarm. */
  nextDeadline(now = Date.now()): number | null {
    const offers = this.rows.offers().map((r) => r.deadline);
    const offer = offers.length > 0 ? Math.min(...offers) : null;
    // MIN walks the partial index from its low end: a row or two, however long the queue.
    const wake = this.sql
      .exec<{ d: number | null }>(
        "SELECT MIN(wake_at) AS d FROM assignments WHERE wake_at > 0 AND wake_at > ? AND state = 'pending'",
        now,
      )
      .one().d;
    return offer === null ? wake : wake === null ? offer : Math.min(offer, wake);
  }

  /**
   * For tests only: edits a row's timing as the passage of time would (an offer's deadline, a
   * backoff's end), through the book so what it keeps in memory stays true.
   */
  testAmend(jobId: string, patch: Pick<Patch, "deadline" | "backoff" | "wake_at">): void {
    const r = this.row(jobId);
    if (r) this.update(r, patch);
  }

  private row(jobId: string): Row | undefined {
    const kept = this.rows.get(jobId);
    if (kept) return kept;
    const r = this.sql.exec<Row>("SELECT * FROM assignments WHERE job_id = ?", jobId).toArray()[0];
    if (r) this.rows.set(r);
    return r;
  }

  /** Writes only the columns whose value changes, so an index over an unchanged column is left alone. */
  private update(r: Row, patch: Patch): Row {
    const next: Row = { ...r, ...patch };
    const cols = (Object.keys(patch) as (keyof Patch)[]).filter((c) => next[c] !== r[c]);
    if (cols.length > 0)
      this.sql.exec(
        `UPDATE assignments SET ${cols.map((c) => `${c} = ?`).join(", ")} WHERE job_id = ?`,
        ...cols.map((c) => next[c]),
        r.job_id,
      );
    this.rows.set(next);
    return next;
  }
}
