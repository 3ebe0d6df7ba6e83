import WebSocket from "ws";
import { z } from "zod";
import {
  type AgentToServer,
  type FencedAgentMessage,
  JobIdSchema,
  PERMISSION_TIMEOUT_S,
  PROTOCOL_VERSION,
  parseFrame,
  type ServerMessageOf,
  type ServerToAgent,
  ServerToAgentSchema,
  writes,
} from "../../protocol/index.ts";
import { DEFAULT_UPLOAD_POLICY, type UploadPolicy } from "./artifact-upload.ts";
import { retryDelay } from "./backoff.ts";
import { ApprovalRelay } from "./coder/approvals.ts";
import { type AgentConfig, stateDirOf } from "./config.ts";
import { recheckStep } from "./executor.ts";
import { type BatchTuning, FrameBatcher } from "./frame-batcher.ts";
import { type Job, JobBook, type LingerTuning } from "./job-book.ts";
import { runJob } from "./job-runner.ts";
import { LogChunker } from "./log-stream.ts";
import type { LogLevel } from "./logger.ts";
import { agentKey, finishAbandoned, type JournalRecord, ResultJournal } from "./result-journal.ts";

export const AGENT_VERSION = "0.1.0";
/** Just enough of a job_offer to answer it with a job_reject when the rest does not parse. */
const OfferFenceSchema = z.object({
  type: z.literal("job_offer"),
  jobId: JobIdSchema,
  attempt: z.number().int().min(1),
  leaseToken: z.string().min(16).max(128),
});
/** Above this many buffered bytes on the socket, output is paused (backpressure). */
const HIGH_WATER = 1024 * 1024;
/** Log frames kept for replay after a reconnect: more than can be in flight (socket + kernel buffers). */
const JOURNAL_LOG_BYTES = 4 * 1024 * 1024;

const WELCOME_TIMEOUT_MS = 10_000;

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

type FencedFrame = FencedAgentMessage;

export interface AgentEvents {
  log(line: string, level?: LogLevel): void;
  /** The server ended this agent for good (replaced, revoked, protocol mismatch); the CLI exits. */
  onFatal(code: number): void;
  /** The protocol version claimed in hello (tests only: an outdated agent). */
  protocolVersion: number;
}

/** Close codes after which reconnecting cannot help: replaced, revoked, protocol mismatch. */
export const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set([4000, 4001, 4003]);

/** How long a coding agent's tool call waits for the requester (SKYNET_APPROVAL_TIMEOUT_S, bounded). */
function approvalTimeoutS(): number {
  const n = Number(process.env.SKYNET_APPROVAL_TIMEOUT_S);
  if (!Number.isInteger(n)) return PERMISSION_TIMEOUT_S.default;
  return Math.min(PERMISSION_TIMEOUT_S.max, Math.max(PERMISSION_TIMEOUT_S.min, n));
}

export class Agent {
  readonly config: AgentConfig;
  private ws: WebSocket | null = null;
  private readonly jobs: JobBook;
  private readonly tuning: AgentTuning;
  private readonly stopping = new AbortController();
  /** Connection number (one per socket) and its keepalive counts, for delivery proofs. */
  private conn = 0;
  private pingsSent = 0;
  private pongsHeard = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  /** The current connection was welcomed and has answered a keepalive since. */
  private healthy = false;
  private stopped = false;
  private welcomed = false;
  agentId: string | null = null;
  private readonly say: (line: string, level?: LogLevel) => void;
  /** Set by drain(): no new offers are taken, and the server is told so. */
  private draining = false;
  private readonly events: Partial<AgentEvents>;
  private writableWaiters: (() => void)[] = [];
  private pongWaiters: (() => void)[] = [];
  /** When the server last sent anything (a frame or a pong). */
  private lastHeard = 0;
  /** Results (and started steps) on disk, so they outlive this process; null without a state dir. */
  private readonly disk: ResultJournal | null;
  private restored = false;
  /** Job frames waiting a few ms to travel together; flushed before anything sent after them. */
  private readonly batcher: FrameBatcher;

  constructor(config: AgentConfig, events: Partial<AgentEvents> = {}, tuning: Partial<AgentTuning> = {}) {
    this.config = config;
    this.tuning = { ...DEFAULT_TUNING, ...tuning };
    this.jobs = new JobBook(
      this.tuning,
      (job) => this.delivered(job),
      () => this.stopped,
      // A result kept on disk goes once the server has it or no longer wants it; on a stop it
      // stays, for the next start to replay.
      (job, why) => {
        if (why !== "stopped") void this.disk?.remove(job.jobId, job.attempt);
      },
    );
    this.say = events.log ?? ((line) => process.stderr.write(`[skynet-agent] ${line}\n`));
    this.batcher = new FrameBatcher((text) => {
      const ws = this.ws;
      if (ws?.readyState === WebSocket.OPEN) ws.send(text, () => this.releaseWriters());
    }, this.tuning.batch);
    this.events = events;
    const dir = stateDirOf(config);
    this.disk = dir ? new ResultJournal(dir, agentKey(config.serverUrl, config.token), this.say) : null;
  }

  get runningJobs(): string[] {
    return this.jobs
      .all()
      .filter((j) => !j.finished)
      .map((j) => j.jobId);
  }

  get connected(): boolean {
    return this.welcomed && this.ws?.readyState === WebSocket.OPEN;
  }

  start(): void {
    this.stopped = false;
    if (!this.disk || this.restored) {
      this.connect();
      return;
    }
    // Results a previous process journaled are loaded first, so the first welcome replays them.
    this.restored = true;
    void this.restore(this.disk)
      .catch((err: unknown) => this.say(`could not read the result journal: ${(err as Error).message}`, "warn"))
      .finally(() => {
        if (!this.stopped) this.connect();
      });
  }

  /** Takes back what a previous process of this agent journaled, as finished jobs kept for replay. */
  private async restore(disk: ResultJournal): Promise<void> {
    const records = await disk.load(this.tuning.maxLingerMs);
    for (const rec of records) {
      if (this.jobs.get(rec.jobId, rec.attempt)) continue;
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
      this.jobs.add(job);
      this.jobs.forgetLater(job);
    }
    if (records.length > 0) this.say(`journal: ${records.length} result(s) from a previous process to report`);
  }

  /** What the journal keeps of a job now. */
  private record(
    job: Job,
    steps: { starting?: string; running?: string } = {},
  ): Omit<JournalRecord, "v" | "agent" | "at"> {
    const { jobId, attempt, leaseToken, spec } = job;
    const [starting, running] = [steps.starting ?? null, steps.running ?? null];
    return { jobId, attempt, leaseToken, spec, frames: job.journal, starting, running, finished: job.finished };
  }

  /** Cancels running jobs (waiting for them to report) and closes the connection. */
  async stop(graceMs = this.config.cancelGraceMs + 2000): Promise<void> {
    // Uploads still being retried give up now (the result says so) rather than hold the stop.
    this.stopping.abort();
    for (const job of this.jobs.all()) if (!job.finished) job.abort.abort();
    const deadline = Date.now() + graceMs;
    while (this.runningJobs.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    this.batcher.flush();
    this.stopped = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.reconnectTimer);
    const ws = this.ws;
    this.ws = null;
    // The close handshake comes after every queued frame (job_finished included): waiting for it
    // means the server has them before the process exits.
    if (ws?.readyState === WebSocket.OPEN) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.say("the server did not answer the close within 5 s: its last frames may not have arrived", "warn");
          resolve();
        }, 5000);
        ws.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
        ws.close(1000, "agent stopping");
      });
    } else ws?.close(1000, "agent stopping");
  }

  /**
   * Graceful stop, first half: takes no new offers (the server is told, so it offers nothing
   * more) and waits up to timeoutMs for the running jobs to finish. True when none is left.
   */
  async drain(timeoutMs: number, interrupted?: AbortSignal): Promise<boolean> {
    if (!this.draining) {
      this.draining = true;
      this.sendRaw({ type: "draining" });
    }
    const deadline = Date.now() + timeoutMs;
    while (this.runningJobs.length > 0 && Date.now() < deadline && !interrupted?.aborted) {
      await new Promise((r) => setTimeout(r, 100));
    }
    return this.runningJobs.length === 0;
  }

  // ---- connection -----------------------------------------------------------------------------

  private connect(): void {
    const url = `${this.config.serverUrl.replace(/^http/, "ws")}/agent/connect`;
    const ws = new WebSocket(url, {
      headers: { Authorization: `Bearer ${this.config.token}` },
      handshakeTimeout: 15_000,
    });
    this.ws = ws;
    this.welcomed = false;
    this.conn += 1;
    this.pingsSent = 0;
    this.pongsHeard = 0;
    ws.on("open", () => {
      this.say(`connected to ${this.config.serverUrl}`);
      // A server that takes the socket but never answers the hello is as good as unreachable.
      const unwelcomed = setTimeout(() => {
        if (this.ws !== ws || this.welcomed) return;
        this.say(`no welcome within ${WELCOME_TIMEOUT_MS / 1000}s; reconnecting`);
        ws.terminate();
      }, WELCOME_TIMEOUT_MS);
      unwelcomed.unref();
      ws.once("close", () => clearTimeout(unwelcomed));
      this.sendRaw({
        type: "hello",
        protocolVersion: this.events.protocolVersion ?? PROTOCOL_VERSION,
        agentName: this.config.name,
        agentVersion: AGENT_VERSION,
        capabilities: ["git", "fs", "runner", "code", ...(this.config.allowShell ? (["shell"] as const) : [])],
        workspaces: Object.keys(this.config.workspaces),
        maxConcurrency: this.config.maxConcurrency,
        allowShell: this.config.allowShell,
      });
    });
    ws.on("message", (data, isBinary) => {
      this.lastHeard = Date.now();
      if (isBinary) return;
      const text = data.toString();
      if (text === "pong") {
        // The registry's auto-response to our keepalive: everything sent before it arrived.
        this.pongsHeard += 1;
        if (this.welcomed) this.healthy = true;
        for (const w of this.pongWaiters.splice(0)) w();
        return;
      }
      const parsed = parseFrame(ServerToAgentSchema, text);
      if (!parsed.ok) {
        // An offer we cannot read is still answered, so the server need not wait for a timeout.
        const offer = parseFrame(OfferFenceSchema, text);
        if (offer.ok) {
          const { type: _type, ...fence } = offer.message;
          this.say(`job ${fence.jobId} rejected: ${parsed.error}`);
          this.sendRaw({ type: "job_reject", ...fence, reason: `unreadable offer: ${parsed.error}`.slice(0, 1000) });
          return;
        }
        this.say(`ignored a bad frame from the server: ${parsed.error}`, "warn");
        return;
      }
      void this.onMessage(parsed.message);
    });
    ws.on("unexpected-response", (_req, res) => {
      if (res.statusCode === 401) {
        // An unknown or revoked token will not start working by retrying.
        this.say(
          "the server refused this agent's token (revoked or unknown); pair again with `skynet-agent pair`",
          "error",
        );
        this.stopped = true;
        ws.terminate();
        this.events.onFatal?.(4001);
        return;
      }
      this.say(`the server answered ${res.statusCode} to the WebSocket upgrade`, "warn");
      ws.terminate();
    });
    ws.on("error", (err) => {
      if (this.failures === 0) this.say(`connection error: ${err.message}`, "warn");
    });
    ws.on("close", (code, reason) => {
      if (this.ws !== ws) return;
      // After a connection the server accepted and answered, the backoff starts small again; a
      // server that drops each connection at once keeps growing it.
      if (this.healthy) this.failures = 0;
      this.healthy = false;
      this.welcomed = false;
      clearInterval(this.heartbeat);
      this.batcher.drop();
      this.releaseWriters();
      if (this.stopped) return;
      // The server closes with 4000 when another process connects with this token (reconnecting
      // would just kick it off in turn), 4001 when the token was revoked and 4003 when it speaks
      // another protocol version: all final.
      if (FINAL_CLOSE_CODES.has(code)) {
        this.say(
          code === 4000
            ? "another agent process connected with this token; stopping this one"
            : code === 4001
              ? "this agent's token was revoked; pair again with `skynet-agent pair <server> <code>`"
              : `the server speaks another protocol version (${reason.toString() || "mismatch"}); upgrade the agent: npm install -g skynet-agent@latest (or npx skynet-agent@latest)`,
          "error",
        );
        this.stopped = true;
        this.events.onFatal?.(code);
        return;
      }
      const delay = this.backoff();
      this.say(
        `disconnected (${code}${reason.length ? ` ${reason.toString()}` : ""}); reconnecting in ${(delay / 1000).toFixed(2)}s`,
      );
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
    });
  }

  private backoff(): number {
    const delay = retryDelay(this.failures, this.config.reconnectBaseMs, this.config.reconnectMaxMs);
    this.failures = Math.min(this.failures + 1, 30);
    return delay;
  }

  /** The coding agent's approvals, relayed to the job's requester through the server. */
  readonly approvals = new ApprovalRelay((frame) => this.sendRaw(frame), approvalTimeoutS());

  private sendRaw(msg: AgentToServer): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    this.batcher.flush();
    ws.send(JSON.stringify(msg), () => this.releaseWriters());
    return true;
  }

  /** A keepalive: its answer proves that everything sent before it arrived, batched frames included. */
  private sendPing(ws: WebSocket): void {
    this.batcher.flush();
    ws.send("ping");
    this.pingsSent += 1;
  }

  /**
   * A job frame, gathered with the attempt's next ones for a few ms. The result goes at once,
   * and so does the start of a step that writes: it waits for the server's confirmation.
   */
  private sendJobFrame(job: Job, msg: FencedFrame): boolean {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    if (msg.type === "job_reject") return this.sendRaw(msg);
    const step = msg.type === "step_started" ? job.spec.steps.find((s) => s.id === msg.stepId) : undefined;
    const now = msg.type === "job_finished" || msg.type === "job_accept" || (!!step && writes(step.risk));
    this.batcher.add(msg, now);
    return true;
  }

  private releaseWriters(): void {
    if (this.ws && this.ws.bufferedAmount > HIGH_WATER && this.connected) return;
    for (const w of this.writableWaiters.splice(0)) w();
  }

  /** Resolves when a fenced frame may be produced without growing memory without bound. */
  private async writable(job: Job): Promise<void> {
    for (;;) {
      if (this.stopped || job.fenced) return;
      if (this.connected && (this.ws?.bufferedAmount ?? 0) <= HIGH_WATER) return;
      // Offline: output is journalled up to the bound, then the child is paused (never dropped).
      if (!this.connected && job.unsentLogBytes < JOURNAL_LOG_BYTES) return;
      await new Promise<void>((resolve) => {
        this.writableWaiters.push(resolve);
        setTimeout(resolve, 100).unref();
      });
    }
  }

  /** Sends a fenced frame now if connected, and keeps it in the job's journal for replay. */
  private async sendFenced(job: Job, frame: FencedFrame): Promise<void> {
    if (job.fenced) return;
    // Frames carry the job's current lease token (it changes when the server re-offers the attempt).
    const msg = frame.leaseToken === job.leaseToken ? frame : { ...frame, leaseToken: job.leaseToken };
    job.journal.push(msg);
    // On disk before it is sent (and before a started step is spawned): a process that dies
    // after this point leaves its successor something true to report.
    const journaled =
      !!this.disk && (msg.type === "step_started" || msg.type === "step_finished" || msg.type === "job_finished");
    if (journaled && this.disk) {
      const rec = this.record(job, msg.type === "step_started" ? { starting: msg.stepId } : {});
      // The write takes a few ms (fsync): the frames before this one wait for it rather than
      // leave alone when their linger ends meanwhile (save() reports its own failures, never throws).
      this.batcher.hold();
      await this.disk.save({ ...rec, finished: msg.type === "job_finished" });
    }
    const online = this.connected;
    if (msg.type === "log") {
      job.journalLogBytes += msg.data.length;
      if (!online) job.unsentLogBytes += msg.data.length;
      // Only frames already sent are pruned (they are the journal's prefix): those written while
      // offline stay until the replay after the next welcome.
      while (job.journalLogBytes > JOURNAL_LOG_BYTES && job.journalLogBytes > job.unsentLogBytes) {
        const i = job.journal.findIndex((f) => f.type === "log");
        if (i < 0) break;
        const [old] = job.journal.splice(i, 1);
        if (old?.type === "log") job.journalLogBytes -= old.data.length;
      }
    }
    if (online && this.sendJobFrame(job, msg) && msg.type === "job_finished") this.markReported(job);
    if (journaled) this.batcher.release();
    if (msg.type === "log") await this.writable(job);
  }

  private markReported(job: Job): void {
    job.reported = { conn: this.conn, pings: this.pingsSent, at: Date.now() };
  }

  private heartbeatFrame(type: "heartbeat" | "resume"): AgentToServer {
    const running = this.jobs
      .all()
      .filter((j) => !j.finished && !j.fenced)
      .map((j) => ({ jobId: j.jobId, attempt: j.attempt, leaseToken: j.leaseToken, lastSeq: j.chunker.seq - 1 }));
    return { type, running };
  }

  // ---- server messages -------------------------------------------------------------------------

  private async onMessage(msg: ServerToAgent): Promise<void> {
    switch (msg.type) {
      case "welcome":
        return this.onWelcome(msg);
      case "job_offer":
        return this.onOffer(msg);
      case "job_cancel": {
        const job = this.jobs.get(msg.jobId, msg.attempt);
        if (job && !job.finished) {
          this.say(`job ${msg.jobId} attempt ${msg.attempt} cancelled by the server: ${msg.reason}`);
          job.abort.abort();
        }
        return;
      }
      case "error":
        return this.onError(msg);
      case "permission_decision":
        return this.approvals.onDecision(msg);
    }
  }

  /** An error about a frame applies only to the (job, attempt) that frame was about. */
  private onError(msg: ServerMessageOf<"error">): void {
    const about = msg.jobId ? ` (job ${msg.jobId}${msg.attempt ? ` attempt ${msg.attempt}` : ""})` : "";
    if (!msg.jobId || msg.attempt === undefined) {
      // It cannot be told which attempt it is about: it never stops a job.
      this.say(`server error ${msg.code}${about}: ${msg.message}`);
      return;
    }
    const job = this.jobs.get(msg.jobId, msg.attempt);
    if (!job) {
      this.say(`server error ${msg.code}${about} ignored: this agent runs no such attempt: ${msg.message}`);
      return;
    }
    // stale_lease: another attempt holds the job; lease_ended: the job is final. Either way this
    // attempt is over here: stop it and send nothing more for it.
    if (msg.code !== "stale_lease" && msg.code !== "lease_ended") {
      this.say(`server error ${msg.code}${about}: ${msg.message}`);
      return;
    }
    if (!job.finished) job.stoppedByFence = true;
    if (!job.fenced) {
      this.say(
        `job ${job.jobId} attempt ${job.attempt}: the server no longer recognises it (${msg.message})${job.finished ? "" : "; stopping it"}`,
      );
    }
    job.fenced = true;
    if (!job.finished) job.abort.abort();
  }

  private onWelcome(msg: ServerMessageOf<"welcome">): void {
    this.agentId = msg.agentId;
    this.welcomed = true;
    this.say(`registered as ${msg.agentId}; serving ${Object.keys(this.config.workspaces).join(", ")}`);
    clearInterval(this.heartbeat);
    // Heartbeats renew leases (they wake the registry); between them a plain "ping" is answered
    // by the registry's auto-response without waking it. Hearing nothing for three heartbeat
    // intervals means a half-open connection: drop it and reconnect.
    const intervalMs = msg.heartbeatIntervalS * 1000;
    const keepaliveMs = Math.max(500, Math.floor(intervalMs / 3));
    let ticks = 0;
    const conn = this.conn;
    this.lastHeard = Date.now();
    this.heartbeat = setInterval(() => {
      ticks += 1;
      if (Date.now() - this.lastHeard > 3 * intervalMs) {
        this.say("no word from the server for three heartbeats; reconnecting");
        this.ws?.terminate();
        return;
      }
      if (ticks % 3 === 0) this.sendRaw(this.heartbeatFrame("heartbeat"));
      else if (this.ws?.readyState === WebSocket.OPEN && this.conn === conn) this.sendPing(this.ws);
    }, keepaliveMs);
    this.heartbeat.unref();
    if (this.jobs.size > 0) {
      this.sendRaw(this.heartbeatFrame("resume"));
      // Replay everything the server may have missed; it drops what it already has.
      for (const job of this.jobs.all()) {
        if (job.fenced) continue;
        for (const frame of job.journal) this.sendRaw(frame);
        job.unsentLogBytes = 0;
        if (job.journal.some((f) => f.type === "job_finished")) this.markReported(job);
      }
      this.say(`resumed ${this.runningJobs.length} running job(s)`);
    }
    if (this.draining) this.sendRaw({ type: "draining" });
    this.releaseWriters();
  }

  private onOffer(msg: ServerMessageOf<"job_offer">): void {
    const fence = { jobId: msg.jobId, attempt: msg.attempt, leaseToken: msg.leaseToken };
    const reject = (reason: string) => {
      this.say(`job ${msg.jobId} rejected: ${reason}`);
      this.sendRaw({ type: "job_reject", ...fence, reason });
    };
    // The offer carries a lease already granted to its holder; one granted to another agent
    // would fence every frame sent under it, so it is turned down before anything runs.
    if (this.agentId !== null && msg.lease.agentId !== this.agentId) {
      reject(`the offered lease is held by ${msg.lease.agentId}, not by this agent`);
      return;
    }
    const existing = this.jobs.get(msg.jobId, msg.attempt);
    const before = this.jobs.previous(msg.jobId, msg.attempt);
    if (before) {
      // This attempt already ran (or runs) here: never a second run. The server may have
      // re-dispatched it under a new lease token (e.g. its first dispatch call failed after
      // the offer went out): what was sent is sent again under the new token.
      if (existing && existing.leaseToken !== msg.leaseToken) {
        this.say(`job ${msg.jobId} attempt ${msg.attempt} offered again under a new lease; it already runs here`);
        existing.leaseToken = msg.leaseToken;
        existing.journal = existing.journal.map((f) => ({ ...f, leaseToken: msg.leaseToken }));
      }
      if (existing) existing.fenced = false;
      if (existing?.finished && this.disk) void this.disk.save(this.record(existing));
      this.sendRaw({ type: "job_accept", ...fence });
      for (const f of before) this.sendRaw({ ...f, leaseToken: msg.leaseToken });
      if (existing?.finished) this.markReported(existing);
      return;
    }
    if (this.draining) {
      reject("agent is stopping");
      return;
    }
    // An older attempt of this same job is about to stop: it does not count against the limit.
    const busy = this.jobs.all().filter((j) => !j.finished && !(j.jobId === msg.jobId && j.attempt <= msg.attempt));
    if (busy.length >= this.config.maxConcurrency) {
      reject("agent is at its concurrency limit");
      return;
    }
    if (msg.spec.jobId !== msg.jobId || msg.spec.attempt !== msg.attempt) {
      reject("offer and spec disagree");
      return;
    }
    const workspace = this.config.workspaces[msg.spec.projectId];
    if (!workspace) {
      reject(`this agent does not serve project ${msg.spec.projectId}`);
      return;
    }
    for (const step of msg.spec.steps) {
      const check = recheckStep(step, this.config.allowShell);
      if (!check.ok) {
        reject(`step ${step.id}: ${check.error}`);
        return;
      }
    }
    const job: Job = {
      ...fence,
      spec: msg.spec,
      abort: new AbortController(),
      chunker: new LogChunker((f) =>
        this.sendFenced(job, { type: "log", ...fence, stepId: f.stepId, seq: f.seq, stream: f.stream, data: f.data }),
      ),
      // The accept leads the replay: if it was lost with the connection (or this process), the
      // server still learns that this agent took the attempt before its result arrives, rather
      // than offering the attempt to another agent as if it had never run.
      journal: [{ type: "job_accept", ...fence }],
      journalLogBytes: 0,
      unsentLogBytes: 0,
      finished: false,
      fenced: false,
    };
    // A newer attempt means the server has given up on the older ones: they stop here too.
    for (const old of this.jobs.all()) {
      if (old.jobId !== msg.jobId || old.finished || (old.attempt >= msg.attempt && old !== existing)) continue;
      this.say(`job ${old.jobId}: attempt ${msg.attempt} offered, so attempt ${old.attempt} is stopped`);
      old.fenced = true;
      old.abort.abort();
    }
    this.jobs.add(job);
    this.sendRaw({ type: "job_accept", ...fence });
    this.say(`job ${msg.jobId} accepted (${msg.spec.steps.map((s) => s.action).join(", ")})`);
    const host = {
      config: this.config,
      send: (j: Job, m: FencedFrame) => this.sendFenced(j, m),
      say: this.say,
      uploadPolicy: this.tuning.uploads,
      giveUp: this.stopping.signal,
      confirmed: (j: Job) => this.confirmed(j),
      approverFor: (j: Job, stepId: string) => this.approvals.approverFor(j, stepId),
      // Journaled as running just before it is spawned: a successor then knows it may have run.
      starting: async (j: Job, stepId: string) => {
        if (this.disk && !j.fenced) await this.disk.save(this.record(j, { running: stepId }));
      },
    };
    void runJob(host, job, workspace)
      .catch((err: unknown) => {
        this.say(`job ${job.jobId} crashed: ${err instanceof Error ? err.message : String(err)}`, "error");
      })
      .finally(() => {
        job.finishedAt = Date.now();
        this.jobs.forgetLater(job);
      });
  }

  /**
   * Resolves once the server surely has every frame this job sent so far: a keepalive sent after
   * them on a welcomed connection was answered (one ordered stream; after a reconnect the replay
   * resent them first). Across an outage it waits; a stopped or fenced job returns at once.
   */
  private async confirmed(job: Job): Promise<void> {
    // The keepalive this wait sent, on which connection (none yet: conn -1).
    const asked = { conn: -1, ping: 0 };
    for (;;) {
      if (this.stopped || job.fenced || job.abort.signal.aborted) return;
      const ws = this.ws;
      if (this.connected && ws) {
        if (asked.conn === this.conn && this.pongsHeard >= asked.ping) return;
        if (asked.conn !== this.conn) {
          this.sendPing(ws);
          asked.conn = this.conn;
          asked.ping = this.pingsSent;
        }
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.pongWaiters = this.pongWaiters.filter((w) => w !== done);
          resolve();
        };
        const timer = setTimeout(done, 100);
        this.pongWaiters.push(done);
      });
    }
  }

  /** The server surely has this job's result: a keepalive sent after job_finished on the same
   * connection was answered (one ordered stream), and it has been connected a while since. A
   * half-open connection, where frames vanish silently, never counts. */
  private delivered(job: Job): boolean {
    const r = job.reported;
    return (
      !!r &&
      this.connected &&
      r.conn === this.conn &&
      this.pongsHeard > r.pings &&
      Date.now() - r.at >= this.tuning.lingerMs
    );
  }
}
