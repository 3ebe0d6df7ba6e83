// Everything the agent says about a job goes out through here, and is kept until the server
// surely has it: each fenced frame joins the job's journal (replayed after every reconnect, the
// server drops what it already has), the ones that record progress are on disk before they are
// sent (result-journal.ts, so a successor process can report them), and log output is paced by
// the socket's backpressure — or, offline, by a bound on what the journal holds.
import type { FencedAgentMessage } from "../../protocol/index.ts";
import { heldMsSince } from "./frame-batcher.ts";
import type { Job, JobBook } from "./job-book.ts";
import type { SendOptions } from "./job-runner.ts";
import { LogKeep } from "./log-keep.ts";
import { LogChunker } from "./log-stream.ts";
import type { LogLevel } from "./logger.ts";
import { finishAbandoned, type JournalRecord, type ResultJournal } from "./result-journal.ts";
import type { Wire } from "./wire.ts";

/** Log frames kept for replay after a reconnect: more than can be in flight (socket + kernel buffers). */
const JOURNAL_LOG_BYTES = 4 * 1024 * 1024;

export class JobReporter {
  private readonly wire: Wire;
  /** Results (and started steps) on disk, so they outlive this process; null without a state dir. */
  private readonly disk: ResultJournal | null;
  private readonly stopped: () => boolean;
  private readonly say: (line: string, level?: LogLevel) => void;
  /** Where each job's journal keeps its log frames' text (log-keep.ts). */
  private readonly keeps = new WeakMap<Job, LogKeep>();

  constructor(wire: Wire, disk: ResultJournal | null, stopped: () => boolean, say: JobReporter["say"]) {
    this.wire = wire;
    this.disk = disk;
    this.stopped = stopped;
    this.say = say;
  }

  /**
   * Sends a fenced frame now if connected, and keeps it in the job's journal for replay.
   * `spawnsNext`: this step_started is followed at once by the step's spawn (nothing waits in
   * between, no server confirmation): its one journal write already says the step is running,
   * rather than a `starting` record overwritten by a `running` one a few ms later.
   */
  async send(job: Job, frame: FencedAgentMessage, opts: SendOptions = {}): Promise<void> {
    if (job.fenced) return;
    // Frames carry the job's current lease token (it changes when the server re-offers the attempt).
    const msg = frame.leaseToken === job.leaseToken ? frame : { ...frame, leaseToken: job.leaseToken };
    job.journal.push(msg.type === "log" ? this.keepOf(job).keep(msg) : msg);
    // On disk before it is sent (and before a started step is spawned): a process that dies
    // after this point leaves its successor something true to report.
    const journaled =
      !!this.disk && (msg.type === "step_started" || msg.type === "step_finished" || msg.type === "job_finished");
    if (journaled && this.disk) {
      const steps =
        msg.type !== "step_started" ? {} : opts.spawnsNext ? { running: msg.stepId } : { starting: msg.stepId };
      const rec = record(job, steps);
      // The write takes a few ms (fsync): the frames before this one wait for it rather than
      // leave alone when their linger ends meanwhile (save() reports its own failures, never throws).
      this.wire.batcher.hold();
      await this.disk.save({ ...rec, finished: msg.type === "job_finished" }, opts.meanwhile);
    }
    const online = this.wire.connected;
    if (msg.type === "log") {
      job.journalLogBytes += msg.data.length;
      if (!online) job.unsentLogBytes += msg.data.length;
      // Only frames already sent are pruned (they are the journal's prefix): those written while
      // offline stay until the replay after the next welcome.
      while (job.journalLogBytes > JOURNAL_LOG_BYTES && job.journalLogBytes > job.unsentLogBytes) {
        const i = job.journal.findIndex((f) => f.type === "log");
        if (i < 0) break;
        const [old] = job.journal.splice(i, 1);
        if (old) job.journalLogBytes -= this.keepOf(job).release(old);
      }
    }
    if (online && this.wire.sendJobFrame(job.spec, msg) && msg.type === "job_finished") this.markReported(job);
    if (journaled) this.wire.batcher.release();
    if (msg.type === "log") await this.writable(job);
  }

  /** The job's frames, kept, under a new lease token (the server re-offered the attempt). */
  relabel(job: Job, leaseToken: string): void {
    job.leaseToken = leaseToken;
    const keep = this.keepOf(job);
    job.journal = job.journal.map((f) => keep.relabel(f, leaseToken));
  }

  private keepOf(job: Job): LogKeep {
    let keep = this.keeps.get(job);
    if (!keep) {
      keep = new LogKeep();
      this.keeps.set(job, keep);
    }
    return keep;
  }

  /** Resolves when the job may produce more output without growing memory without bound. */
  private async writable(job: Job): Promise<void> {
    for (;;) {
      if (this.stopped() || job.fenced) return;
      if (this.wire.roomy) return;
      // Offline: output is journalled up to the bound, then the child is paused (never dropped).
      if (!this.wire.connected && job.unsentLogBytes < JOURNAL_LOG_BYTES) return;
      await this.wire.drained();
    }
  }

  /** Resolves once the server surely has every frame this job sent so far; a stopped or fenced
   * job returns at once. */
  confirmed(job: Job): Promise<void> {
    return this.wire.confirmed(() => this.stopped() || job.fenced || job.abort.signal.aborted);
  }

  /** This job's job_finished just went out: a keepalive answered after it proves it arrived. */
  markReported(job: Job): void {
    job.reported = this.wire.receipt();
  }

  /** The server surely has this job's result, and it has been connected a while since. */
  delivered(job: Job, lingerMs: number): boolean {
    const r = job.reported;
    return !!r && this.wire.proves(r) && Date.now() - r.at >= lingerMs;
  }

  /** After a welcome: everything the server may have missed goes again. */
  replay(jobs: Job[]): void {
    for (const job of jobs) {
      if (job.fenced) continue;
      for (const frame of job.journal) this.wire.send(frame.type === "job_accept" ? acceptAgain(job, frame) : frame);
      job.unsentLogBytes = 0;
      if (job.journal.some((f) => f.type === "job_finished")) this.markReported(job);
    }
  }

  /** Saves the job as it stands (its lease token changed, say); a no-op without a state dir. */
  async save(job: Job, steps: { running?: string } = {}): Promise<void> {
    if (!this.disk) return;
    // Like a frame's own journal write: the batch waiting meanwhile is not sent for want of company.
    this.wire.batcher.hold();
    try {
      await this.disk.save(record(job, steps));
    } finally {
      this.wire.batcher.release();
    }
  }

  /** Takes back what a previous process of this agent journaled, as finished jobs kept for replay. */
  async restore(jobs: JobBook, maxLingerMs: number): Promise<void> {
    const disk = this.disk;
    if (!disk) return;
    const records = await disk.load(maxLingerMs);
    for (const rec of records) {
      if (jobs.get(rec.jobId, rec.attempt)) continue;
      let frames = rec.frames;
      let finishedAt = rec.at;
      if (!rec.finished) {
        // The previous process died mid-attempt; its steps died with it (contain.ts).
        const extra = finishAbandoned(rec);
        frames = [...frames, ...extra];
        finishedAt = Date.now();
        const last = extra.at(-1);
        const why = last?.type === "job_finished" ? last.result.error : undefined;
        this.say(`job ${rec.jobId} attempt ${rec.attempt}: ${why ?? "unfinished"}; reporting it FAILED`, "warn");
        await disk.save({ ...rec, frames, starting: null, running: null, finished: true });
      }
      const job: Job = {
        jobId: rec.jobId,
        attempt: rec.attempt,
        leaseToken: rec.leaseToken,
        spec: rec.spec,
        abort: new AbortController(),
        chunker: new LogChunker(async () => undefined),
        journal: frames,
        journalLogBytes: 0,
        unsentLogBytes: 0,
        finished: true,
        fenced: false,
        finishedAt,
      };
      jobs.add(job);
      jobs.forgetLater(job);
    }
    if (records.length > 0) this.say(`journal: ${records.length} result(s) from a previous process to report`);
  }
}

/** What the journal keeps of a job now. */
function record(job: Job, steps: { starting?: string; running?: string }): Omit<JournalRecord, "v" | "agent" | "at"> {
  const { jobId, attempt, leaseToken, spec } = job;
  const [starting, running] = [steps.starting ?? null, steps.running ?? null];
  return { jobId, attempt, leaseToken, spec, frames: job.journal, starting, running, finished: job.finished };
}

/**
 * An accept sent again (after a reconnect, or for a re-offer of an attempt running here): it says
 * how long ago this process took the attempt, so that, if the first one was lost, the server
 * still dates RUNNING near when it started rather than at the reconnect.
 */
export function acceptAgain<T extends { type: "job_accept" }>(job: Pick<Job, "acceptedAt">, frame: T): T {
  return job.acceptedAt === undefined ? frame : { ...frame, heldMs: heldMsSince(job.acceptedAt) };
}
