// The agent's jobs, kept per (job, attempt) so two attempts of one job never share state, and
// what it remembers of them after they end: a finished job stays (with its journal, replayed
// after each reconnect) until the server has surely received its result, then only its non-log
// frames are kept for a while, so a late re-offer of that attempt is answered with its result
// instead of a second run.
import type { AgentToServer, FencedAgentMessage } from "../../protocol/index.ts";
import type { RunningJob } from "./job-runner.ts";

export type Job = RunningJob & {
  /** Where this job's job_finished last went out: the connection and the keepalives sent on it
   * before. A pong to a later keepalive proves the server received it (one ordered stream). */
  reported?: { conn: number; pings: number; at: number };
  finishedAt?: number;
  /** The server called it stale while it ran, so it was stopped part-way. */
  stoppedByFence?: boolean;
};

export interface LingerTuning {
  /** A finished job is kept at least this long connected after its result went out… */
  lingerMs: number;
  /** …and in any case no longer than this after it finished: the bound on an outage across
   * which a result is still reported (well beyond any server-side wait for an unreachable agent). */
  maxLingerMs: number;
}

/** delivered: the server surely has the result; fenced: it called the attempt stale or over;
 * expired: kept as long as allowed; stopped: the agent stopped (the result may not have arrived). */
export type ForgetReason = "delivered" | "fenced" | "expired" | "stopped";

/** An attempt as heartbeats and the resume after a reconnect report it (it renews the lease). */
export type RunningRef = Extract<AgentToServer, { type: "heartbeat" }>["running"][number];

export const keyOf = (jobId: string, attempt: number): string => `${jobId}#${attempt}`;

export class JobBook {
  private readonly jobs = new Map<string, Job>();
  private readonly ran = new Map<string, { frames: FencedAgentMessage[]; at: number }>();
  private readonly tuning: LingerTuning;
  /** Whether the server surely has this finished job's result (decided by the connection). */
  private readonly delivered: (job: Job) => boolean;
  private readonly stopped: () => boolean;
  /** Told when a finished job is let go, and why (the on-disk journal deletes its file then). */
  private readonly forgotten: (job: Job, why: ForgetReason) => void;

  constructor(
    tuning: LingerTuning,
    delivered: (job: Job) => boolean,
    stopped: () => boolean,
    forgotten: (job: Job, why: ForgetReason) => void = () => undefined,
  ) {
    this.tuning = tuning;
    this.delivered = delivered;
    this.stopped = stopped;
    this.forgotten = forgotten;
  }

  get(jobId: string, attempt: number): Job | undefined {
    return this.jobs.get(keyOf(jobId, attempt));
  }

  add(job: Job): void {
    this.jobs.set(keyOf(job.jobId, job.attempt), job);
  }

  all(): Job[] {
    return [...this.jobs.values()];
  }

  get size(): number {
    return this.jobs.size;
  }

  /** The attempts still running here that the server has not called stale. */
  live(): RunningRef[] {
    return this.all()
      .filter((j) => !j.finished && !j.fenced)
      .map((j) => ({ jobId: j.jobId, attempt: j.attempt, leaseToken: j.leaseToken, lastSeq: j.chunker.seq - 1 }));
  }

  /** The frames this agent already produced for (job, attempt), if it ran it here and did not
   * stop it part-way: a re-offer of that attempt gets them rather than a second run. */
  previous(jobId: string, attempt: number): FencedAgentMessage[] | undefined {
    const job = this.get(jobId, attempt);
    if (job && !job.stoppedByFence) return job.journal;
    return job ? undefined : this.ran.get(keyOf(jobId, attempt))?.frames;
  }

  /**
   * Forgets a finished job once the server surely has its result, or once the server called it
   * stale (after the linger), or at the latest maxLingerMs after it finished. Until then an
   * outage of any length up to that bound loses nothing.
   */
  forgetLater(job: Job): void {
    const key = keyOf(job.jobId, job.attempt);
    const every = Math.min(1000, this.tuning.lingerMs);
    const check = () => {
      if (this.jobs.get(key) !== job) return;
      const age = Date.now() - (job.finishedAt ?? Date.now());
      const fenced = job.fenced && age >= this.tuning.lingerMs;
      const expired = age >= this.tuning.maxLingerMs;
      const delivered = this.delivered(job);
      if (!delivered && !fenced && !expired && !this.stopped()) {
        setTimeout(check, every).unref();
        return;
      }
      this.jobs.delete(key);
      this.forgotten(job, delivered ? "delivered" : fenced ? "fenced" : expired ? "expired" : "stopped");
      if (job.stoppedByFence) return;
      const now = Date.now();
      for (const [k, r] of this.ran) if (now - r.at >= this.tuning.maxLingerMs) this.ran.delete(k);
      this.ran.set(key, { frames: job.journal.filter((f) => f.type !== "log"), at: job.finishedAt ?? now });
    };
    setTimeout(check, every).unref();
  }
}
