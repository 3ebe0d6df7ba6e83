// Offers: waiting jobs go to agents with a free slot, in queue order, one offer at a time per
// job, each carrying the token its JobDO minted when it queued the attempt, with no call
// back to the job: the first accept under it takes the lease. Once an offer ends, the token goes
// dead and the job mints a new one before anyone else is offered the attempt (lease.ts). The
// cost of a pass is the work it can do, not the backlog: it returns before reading the queue
// when every agent is full and stops reading once they are. Why no connected agent could ever
// take a job is worked out when the job starts waiting and when the agents change, not per pass.
import type { ExecutionSpec } from "../../protocol/index.ts";
import type { Config } from "../config.ts";
import type { Reissue } from "../jobs/lease.ts";
import { errorMessage, log } from "../lib/log.ts";
import { type AssignmentBook, type OfferFailure, PENDING_PAGE, type QueueMark } from "./assignments.ts";
import type { JobStubs } from "./job-stubs.ts";
import { chooseAgent, type PendingJob, requiredCapabilities, unavailableFor, whyUnservable } from "./matching.ts";
import type { Sockets } from "./sockets.ts";

export class Dispatcher {
  private readonly ctx: DurableObjectState;
  private readonly config: Config;
  private readonly book: AssignmentBook;
  private readonly sockets: Sockets;
  private readonly jobs: JobStubs;
  /** Jobs whose notice did not get through: said again on the next pass. */
  private readonly unsaid = new Set<string>();
  /** When the alarm this object set will run (null: not known to be set, e.g. after a restart). */
  private alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, config: Config, book: AssignmentBook, sockets: Sockets, jobs: JobStubs) {
    this.ctx = ctx;
    this.config = config;
    this.book = book;
    this.sockets = sockets;
    this.jobs = jobs;
  }

  /**
   * A new attempt handed over while no job waits: offered at once to the least busy agent that
   * can take it, its row written as the offer. False (nothing written) when it must queue.
   */
  offerNew(spec: ExecutionSpec, leaseToken: string): boolean {
    const agents = this.sockets.profiles();
    const load = (id: string) => this.book.loadOf(id);
    const agent = chooseAgent(spec, requiredCapabilities(spec), agents, load, []);
    if (!agent) return false;
    const now = Date.now();
    if (!this.book.addOffered(spec, leaseToken, agent.agentId, now + this.config.acceptTimeoutS * 1000)) return false;
    this.sendOffer(agent.agentId, spec, leaseToken, now);
    return true;
  }

  /** The offer's deadline is in the book: the alarm is set for it (or an earlier one kept). */
  async armed(): Promise<void> {
    await this.alarmBy(this.book.nextDeadline(Date.now()));
  }

  /** The alarm just ran (the runtime cleared it). */
  alarmRan(): void {
    this.alarmAt = null;
  }

  /**
   * The alarm at `next` or earlier: one still to come at or before it is kept (it finds nothing
   * due and sets the next), so a stream of offers does not write the alarm once per offer.
   */
  private async alarmBy(next: number | null): Promise<void> {
    if (next === null) return;
    const at = this.alarmAt;
    if (at !== null && at <= next && at > Date.now()) return;
    await this.ctx.storage.setAlarm(next);
    this.alarmAt = next;
  }

  /**
   * Offers waiting jobs, oldest first, to a connected agent with the project, the capabilities
   * and a free slot, not excluded or backed off for it. Returns the job ids offered.
   */
  async pump(): Promise<string[]> {
    const offered: string[] = [];
    const agents = this.sockets.profiles();
    const load = (id: string) => this.book.loadOf(id);
    const room = () => agents.some((a) => load(a.agentId) < a.maxConcurrency);
    const now = Date.now();
    let mark: QueueMark | null = null;
    walk: while (room()) {
      const page = this.book.pendingPage(mark);
      for (const { job, mark: at } of page) {
        mark = at;
        const agent = chooseAgent(job.spec, requiredCapabilities(job.spec), agents, load, unavailableFor(job, now));
        if (!agent) continue;
        // Reserved first, so a pass running while a new token is awaited does not offer it too.
        this.book.offer(job.jobId, agent.agentId, now + this.config.acceptTimeoutS * 1000);
        let leaseToken: string | null = job.leaseToken;
        if (!leaseToken) {
          // The token of an ended offer whose reissue failed: a new one first (the rare path).
          leaseToken = await this.reissue(job.jobId, job.attempt, agent.agentId);
          const e = this.book.get(job.jobId);
          if (!(e?.state === "offered" && e.agentId === agent.agentId && e.attempt === job.attempt)) leaseToken = null;
        }
        if (leaseToken) {
          this.sendOffer(agent.agentId, job.spec, leaseToken, now);
          offered.push(job.jobId);
        }
        // After an await the rest of the page may be stale: read on afresh.
        if (!job.leaseToken) continue walk;
      }
      if (page.length < PENDING_PAGE) break;
    }
    await this.alarmBy(this.book.nextDeadline(now));
    if (this.unsaid.size > 0) {
      const retry = [...this.unsaid].map((id) => this.book.get(id)).filter((j) => j?.state === "pending");
      this.unsaid.clear();
      await this.notify(retry);
    }
    return offered;
  }

  private sendOffer(agentId: string, spec: ExecutionSpec, leaseToken: string, now: number): void {
    this.sockets.send(agentId, {
      type: "job_offer",
      jobId: spec.jobId,
      attempt: spec.attempt,
      leaseToken,
      lease: { agentId, expiresAt: now + this.config.leaseS * 1000 },
      spec,
    });
  }

  /**
   * Tells each waiting job no connected agent could ever take why, once per reason (every
   * waiting job when none are given: the connected agents or what they serve changed).
   */
  async notify(jobs?: Iterable<PendingJob>): Promise<void> {
    const agents = this.sockets.profiles();
    // With no agent connected at all nothing is said (whyUnservable): no need to read the queue.
    if (agents.length === 0) return;
    const notices: { jobId: string; attempt: number; text: string }[] = [];
    for (const job of jobs ?? this.book.pending()) {
      const why = whyUnservable(job, requiredCapabilities(job.spec), agents);
      if (why === null || why === job.notice) continue;
      this.book.setNotice(job.jobId, why);
      notices.push({ jobId: job.jobId, attempt: job.attempt, text: why });
    }
    for (const n of notices) {
      if (await this.tellJob(n.jobId, n.attempt, n.text)) continue;
      this.book.setNotice(n.jobId, null);
      this.unsaid.add(n.jobId);
    }
  }

  /**
   * The offer failed (refused, timed out, socket closed): back to waiting, and the job mints a
   * new token for the next offer, so the one this offer carried is refused from now on.
   */
  async offerEnded(jobId: string, agentId: string, attempt: number, failure: OfferFailure): Promise<void> {
    this.book.offerFailed(jobId, agentId, failure);
    await this.reissue(jobId, attempt, null);
  }

  /** A notice to the job's requester (a job event and a notification); false if it did not get there. */
  async tellJob(jobId: string, attempt: number, text: string): Promise<boolean> {
    try {
      await this.jobs.call(jobId, (j) => j.waitingNotice(attempt, text));
      return true;
    } catch (err) {
      log("warn", "job notice failed", { jobId, error: errorMessage(err) });
      return false;
    }
  }

  /**
   * Asks the job for a new token for this attempt and books the answer: the token (kept only if
   * the entry still waits for one), the agent whose accept already took the attempt, or the entry
   * dropped when the attempt no longer waits. A job out of reach leaves the entry without a
   * token, so the next offer asks again. `offeredTo`: the agent this pass reserved it for.
   */
  private async reissue(jobId: string, attempt: number, offeredTo: string | null): Promise<string | null> {
    const current = () => {
      const e = this.book.get(jobId);
      return e?.attempt === attempt ? e : undefined;
    };
    let res: Reissue;
    try {
      res = await this.jobs.call(jobId, (j) => j.reissueLease(attempt));
    } catch (err) {
      log("warn", "lease reissue failed; the offer waits", { jobId, attempt, error: errorMessage(err) });
      const e = current();
      if (offeredTo && e?.state === "offered" && e.agentId === offeredTo)
        this.book.offerFailed(jobId, offeredTo, { kind: "timeout" });
      return null;
    }
    const e = current();
    if (!e) return null;
    if (res.kind === "gone") {
      log("info", "job not offered: its attempt is not waiting", { jobId, attempt, reason: res.reason });
      if (e.state !== "running") this.book.remove(jobId);
      return null;
    }
    if (res.kind === "held") {
      this.book.markRunning(jobId, res.agentId, attempt, res.leaseToken);
      return null;
    }
    // Only into an entry still without one: a token the book holds already stays.
    if (e.leaseToken) return null;
    this.book.setLeaseToken(jobId, res.leaseToken);
    return res.leaseToken;
  }
}
