// CHATHAN's core: one connection to the server (connection.ts), the jobs it runs there, and the
// way in and out. The server's frames are dispatched here by kind: a welcome registers the agent
// and replays what the server may have missed, an offer is accepted or rejected (offers.ts),
// cancels and stale-lease errors stop attempts (job-stops.ts), and permission decisions answer
// the coding agent's tool calls (coder/approvals.ts). Frames about jobs go out through the
// JobReporter (journaled, on disk, batched) on the Wire (the socket, and delivery proofs).
import { PROTOCOL_VERSION, type ServerMessageOf, type ServerToAgent } from "../../protocol/index.ts";
import { DEFAULT_UPLOAD_POLICY, type UploadPolicy } from "./artifact-upload.ts";
import { ApprovalRelay, approvalTimeoutS } from "./coder/approvals.ts";
import { type AgentConfig, stateDirOf } from "./config.ts";
import { Connection } from "./connection.ts";
import type { BatchTuning } from "./frame-batcher.ts";
import { JobBook, type LingerTuning } from "./job-book.ts";
import { JobReporter } from "./job-reporter.ts";
import { cancelJob, serverError } from "./job-stops.ts";
import type { LogLevel } from "./logger.ts";
import { OfferDesk } from "./offers.ts";
import { agentKey, ResultJournal } from "./result-journal.ts";
import { Wire } from "./wire.ts";

/** How long finished jobs are kept for replay, and how uploads are retried; tests shorten them. */
export interface AgentTuning extends LingerTuning {
  uploads: UploadPolicy;
  /** How job frames are gathered into `batch` frames (frame-batcher.ts). */
  batch?: Partial<BatchTuning>;
}
export const DEFAULT_TUNING: AgentTuning = {
  lingerMs: 15_000,
  maxLingerMs: 60 * 60_000,
  uploads: DEFAULT_UPLOAD_POLICY,
};

export interface AgentEvents {
  log(line: string, level?: LogLevel): void;
  /** The server ended this agent for good (replaced, revoked, protocol mismatch); the CLI exits. */
  onFatal(code: number): void;
  /** The protocol version claimed in hello (tests only: an outdated agent). */
  protocolVersion: number;
}

export class Agent {
  readonly config: AgentConfig;
  private readonly tuning: AgentTuning;
  private readonly say: (line: string, level?: LogLevel) => void;
  private readonly jobs: JobBook;
  private readonly wire: Wire;
  private readonly link: Connection;
  private readonly reporter: JobReporter;
  private readonly offers: OfferDesk;
  /** The coding agent's approvals, relayed to the job's requester through the server. */
  readonly approvals: ApprovalRelay;
  /** Aborted by stop(): uploads still being retried give up rather than hold the stop. */
  private readonly stopping = new AbortController();
  /** Set by drain(): no new offers are taken, and the server is told so. */
  private draining = false;
  /** A previous process's journal was taken back (once per Agent). */
  private restored = false;

  constructor(config: AgentConfig, events: Partial<AgentEvents> = {}, tuning: Partial<AgentTuning> = {}) {
    this.config = config;
    this.tuning = { ...DEFAULT_TUNING, ...tuning };
    const say = events.log ?? ((line) => process.stderr.write(`[skynet-agent] ${line}\n`));
    this.say = say;
    this.wire = new Wire(this.tuning.batch);
    this.link = new Connection(config, this.wire, {
      say,
      onFatal: (code) => events.onFatal?.(code),
      protocolVersion: events.protocolVersion ?? PROTOCOL_VERSION,
      onFrame: (msg) => this.onMessage(msg),
      running: () => this.jobs.live(),
    });
    const dir = stateDirOf(config);
    const disk = dir ? new ResultJournal(dir, agentKey(config.serverUrl, config.token), say) : null;
    this.reporter = new JobReporter(this.wire, disk, () => this.link.stopped, say);
    this.jobs = new JobBook(
      this.tuning,
      (job) => this.reporter.delivered(job, this.tuning.lingerMs),
      () => this.link.stopped,
      // A result kept on disk goes once the server has it or no longer wants it; on a stop it
      // stays, for the next start to replay.
      (job, why) => {
        if (why !== "stopped") void disk?.remove(job.jobId, job.attempt);
      },
    );
    this.approvals = new ApprovalRelay((frame) => this.wire.send(frame), approvalTimeoutS());
    this.offers = new OfferDesk({
      config,
      jobs: this.jobs,
      wire: this.wire,
      reporter: this.reporter,
      approvals: this.approvals,
      say,
      uploads: this.tuning.uploads,
      giveUp: this.stopping.signal,
    });
    // Without a state dir there is no previous journal to take back.
    this.restored = !disk;
  }

  /** What the server registered this agent as (null before the first welcome). */
  get agentId(): string | null {
    return this.link.agentId;
  }

  get runningJobs(): string[] {
    return this.jobs
      .all()
      .filter((j) => !j.finished)
      .map((j) => j.jobId);
  }

  get connected(): boolean {
    return this.wire.connected;
  }

  start(): void {
    if (this.restored) {
      this.link.start();
      return;
    }
    // Results a previous process journaled are loaded first, so the first welcome replays them.
    this.restored = true;
    this.link.start(
      this.reporter
        .restore(this.jobs, this.tuning.maxLingerMs)
        .catch((err: unknown) => this.say(`could not read the result journal: ${(err as Error).message}`, "warn")),
    );
  }

  /** Cancels running jobs (waiting for them to report) and closes the connection. */
  async stop(graceMs = this.config.cancelGraceMs + 2000): Promise<void> {
    this.stopping.abort();
    for (const job of this.jobs.all()) if (!job.finished) job.abort.abort();
    const deadline = Date.now() + graceMs;
    while (this.runningJobs.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    this.wire.batcher.flush();
    await this.link.close();
  }

  /**
   * Graceful stop, first half: takes no new offers (the server is told, so it offers nothing
   * more) and waits up to timeoutMs for the running jobs to finish. True when none is left.
   */
  async drain(timeoutMs: number, interrupted?: AbortSignal): Promise<boolean> {
    if (!this.draining) {
      this.draining = true;
      this.wire.send({ type: "draining" });
    }
    const deadline = Date.now() + timeoutMs;
    while (this.runningJobs.length > 0 && Date.now() < deadline && !interrupted?.aborted) {
      await new Promise((r) => setTimeout(r, 100));
    }
    return this.runningJobs.length === 0;
  }

  private onMessage(msg: ServerToAgent): void {
    switch (msg.type) {
      case "welcome":
        this.onWelcome(msg);
        break;
      case "job_offer":
        this.offers.take(msg, { agentId: this.link.agentId, draining: this.draining });
        break;
      case "job_cancel":
        cancelJob(this.jobs, msg, this.say);
        break;
      case "error":
        serverError(this.jobs, msg, this.say);
        break;
      case "permission_decision":
        this.approvals.onDecision(msg);
        break;
    }
  }

  private onWelcome(msg: ServerMessageOf<"welcome">): void {
    this.link.welcome(msg);
    if (this.jobs.size > 0) {
      this.wire.send({ type: "resume", running: this.jobs.live() });
      // Replay everything the server may have missed; it drops what it already has.
      this.reporter.replay(this.jobs.all());
      this.say(`resumed ${this.runningJobs.length} running job(s)`);
    }
    if (this.draining) this.wire.send({ type: "draining" });
    this.wire.releaseWriters();
  }
}
