// Offers: waiting jobs go to agents with a free slot, in queue order, one offer at a time per
// job, each carrying the lease its JobDO granted first (taken back when the offer fails). The
// cost of a pass is the work it can do, not the backlog: it returns before reading the queue
// when every agent is full and stops reading once they are. Why no connected agent could ever
// take a job is worked out when the job starts waiting and when the agents change, not per pass.
import type { Result } from "../../protocol/index.ts";
import type { Config } from "../config.ts";
import type { FenceRefusal } from "../jobs/job-api.ts";
import type { OfferedLease } from "../jobs/lease.ts";
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

  constructor(ctx: DurableObjectState, config: Config, book: AssignmentBook, sockets: Sockets, jobs: JobStubs) {
    this.ctx = ctx;
    this.config = config;
    this.book = book;
    this.sockets = sockets;
    this.jobs = jobs;
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
        // Reserved before the grant is awaited, so a pass running meanwhile does not offer it too.
        this.book.offer(job.jobId, agent.agentId, now + this.config.acceptTimeoutS * 1000);
        const lease = await this.grantLease(job.jobId, agent.agentId, job.attempt);
        if (lease) {
          this.sockets.send(agent.agentId, {
            type: "job_offer",
            jobId: job.jobId,
            attempt: job.attempt,
            leaseToken: lease.leaseToken,
            lease: { agentId: agent.agentId, expiresAt: lease.expiresAt },
            spec: job.spec,
          });
          offered.push(job.jobId);
        }
        // The rest of the page was read before the grant was awaited: read on afresh.
        continue walk;
      }
      if (page.length < PENDING_PAGE) break;
    }
    const next = this.book.nextDeadline(now);
    if (next !== null) await this.ctx.storage.setAlarm(next);
    if (this.unsaid.size > 0) {
      const retry = [...this.unsaid].map((id) => this.book.get(id)).filter((j) => j?.state === "pending");
      this.unsaid.clear();
      await this.notify(retry);
    }
    return offered;
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

  /** The offer failed (refused, timed out, socket closed): back to waiting, its lease taken back. */
  async offerEnded(jobId: string, agentId: string, attempt: number, failure: OfferFailure): Promise<void> {
    this.book.offerFailed(jobId, agentId, failure);
    await this.takeBack(jobId, agentId, attempt);
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
   * Asks the job for the lease this offer carries; null when the offer must not go out. The
   * job no longer waiting drops the entry; a job out of reach puts it back, retried by the alarm.
   * An entry that changed while the grant was awaited (the agent left, the job was cancelled)
   * hands the lease straight back.
   */
  private async grantLease(jobId: string, agentId: string, attempt: number): Promise<OfferedLease | null> {
    const stillOurs = () => {
      const e = this.book.get(jobId);
      return e?.state === "offered" && e.agentId === agentId && e.attempt === attempt;
    };
    let res: Result<OfferedLease, FenceRefusal>;
    try {
      res = await this.jobs.call(jobId, (j) => j.offerLease(agentId, attempt));
    } catch (err) {
      log("warn", "lease grant failed; the offer waits", { jobId, agentId, error: errorMessage(err) });
      if (stillOurs()) this.book.offerFailed(jobId, agentId, { kind: "timeout" });
      return null;
    }
    if (!res.ok) {
      log("info", "job not offered: its attempt is not waiting", { jobId, attempt, reason: res.error.message });
      if (stillOurs()) this.book.remove(jobId);
      return null;
    }
    if (!stillOurs()) {
      await this.takeBack(jobId, agentId, attempt);
      return null;
    }
    this.book.setLeaseToken(jobId, res.value.leaseToken);
    return res.value;
  }

  /** The job takes back a lease it granted with an offer; the re-offer grants a new one anyway. */
  private async takeBack(jobId: string, agentId: string, attempt: number): Promise<void> {
    await this.jobs
      .call(jobId, (j) => j.takeBackLease(agentId, attempt))
      .catch((err: unknown) => log("warn", "lease take-back failed", { jobId, agentId, error: errorMessage(err) }));
  }
}
