// The agent's answer to a job offer: accept it and run it (job-runner.ts), or reject it with a
// reason the server can act on. An attempt that already ran (or runs) here is never run twice:
// a re-offer of it gets what it sent, under the offer's lease token. Every step is re-checked
// here against the same risk rule the server applied (executor.ts recheckStep).
import { z } from "zod";
import {
  err,
  type FencedAgentMessage,
  JobIdSchema,
  ok,
  parseFrame,
  type Result,
  type ServerMessageOf,
} from "../../protocol/index.ts";
import type { UploadPolicy } from "./artifact-upload.ts";
import type { ApprovalRelay } from "./coder/approvals.ts";
import type { AgentConfig } from "./config.ts";
import { recheckStep } from "./executor.ts";
import type { Job, JobBook } from "./job-book.ts";
import { acceptAgain, type JobReporter } from "./job-reporter.ts";
import { type JobHost, runJob } from "./job-runner.ts";
import { stopOlderAttempts } from "./job-stops.ts";
import { LogChunker } from "./log-stream.ts";
import type { LogLevel } from "./logger.ts";
import type { Wire } from "./wire.ts";

/** Just enough of a job_offer to answer it with a job_reject when the rest does not parse. */
const OfferFenceSchema = z.object({
  type: z.literal("job_offer"),
  jobId: JobIdSchema,
  attempt: z.number().int().min(1),
  leaseToken: z.string().min(16).max(128),
});

type Reject = Extract<FencedAgentMessage, { type: "job_reject" }>;

/** The job_reject for a frame that did not parse but is recognisably an offer; null otherwise. */
export function unreadableOffer(text: string, error: string): Reject | null {
  const offer = parseFrame(OfferFenceSchema, text);
  if (!offer.ok) return null;
  const { type: _type, ...fence } = offer.message;
  return { type: "job_reject", ...fence, reason: `unreadable offer: ${error}`.slice(0, 1000) };
}

export interface OfferDeps {
  config: AgentConfig;
  jobs: JobBook;
  wire: Wire;
  reporter: JobReporter;
  /** The coding agent's approvals, relayed to the job's requester through the server. */
  approvals: ApprovalRelay;
  say(line: string, level?: LogLevel): void;
  uploads: UploadPolicy;
  /** Aborted when the agent stops: uploads still being retried give up. */
  giveUp: AbortSignal;
}

export class OfferDesk {
  private readonly d: OfferDeps;
  /** What a running job needs from the agent around it (job-runner.ts). */
  private readonly host: JobHost;

  constructor(deps: OfferDeps) {
    this.d = deps;
    const { config, reporter, approvals, say } = deps;
    this.host = {
      config,
      send: (j: Job, m: FencedAgentMessage, opts) => reporter.send(j, m, opts),
      say,
      uploadPolicy: deps.uploads,
      giveUp: deps.giveUp,
      confirmed: (j: Job) => reporter.confirmed(j),
      approverFor: (j, stepId) => approvals.approverFor(j, stepId),
      // A confirmed step is journaled as running just before it is spawned: a successor then
      // knows it may have run (other steps say so with their step_started, job-reporter.ts).
      starting: async (j: Job, stepId: string) => {
        if (!j.fenced) await reporter.save(j, { running: stepId });
      },
    };
  }

  /** agentId: what the server registered this agent as (null before the first welcome);
   * draining: the agent is stopping and takes nothing new. */
  take(msg: ServerMessageOf<"job_offer">, here: { agentId: string | null; draining: boolean }): void {
    const { jobs, wire, reporter, say } = this.d;
    const fence = { jobId: msg.jobId, attempt: msg.attempt, leaseToken: msg.leaseToken };
    const reject = (reason: string) => {
      say(`job ${msg.jobId} rejected: ${reason}`);
      wire.send({ type: "job_reject", ...fence, reason });
    };
    // The offer carries a lease already granted to its holder; one granted to another agent
    // would fence every frame sent under it, so it is turned down before anything runs.
    if (here.agentId !== null && msg.lease.agentId !== here.agentId) {
      reject(`the offered lease is held by ${msg.lease.agentId}, not by this agent`);
      return;
    }
    const existing = jobs.get(msg.jobId, msg.attempt);
    const before = jobs.previous(msg.jobId, msg.attempt);
    if (before) {
      // This attempt already ran (or runs) here: never a second run. The server may have
      // re-dispatched it under a new lease token (e.g. its first dispatch call failed after
      // the offer went out): what was sent is sent again under the new token.
      if (existing && existing.leaseToken !== msg.leaseToken) {
        say(`job ${msg.jobId} attempt ${msg.attempt} offered again under a new lease; it already runs here`);
        reporter.relabel(existing, msg.leaseToken);
      }
      if (existing) existing.fenced = false;
      if (existing?.finished) void reporter.save(existing);
      wire.send(existing ? acceptAgain(existing, { type: "job_accept", ...fence }) : { type: "job_accept", ...fence });
      for (const f of before) wire.send({ ...f, leaseToken: msg.leaseToken });
      if (existing?.finished) reporter.markReported(existing);
      return;
    }
    const workspace = this.workspaceFor(msg, here.draining);
    if (!workspace.ok) {
      reject(workspace.error);
      return;
    }
    const job: Job = {
      ...fence,
      spec: msg.spec,
      abort: new AbortController(),
      chunker: new LogChunker((f) =>
        reporter.send(job, { type: "log", ...fence, stepId: f.stepId, seq: f.seq, stream: f.stream, data: f.data }),
      ),
      // The accept leads the replay: if it was lost with the connection (or this process), the
      // server still learns that this agent took the attempt before its result arrives, rather
      // than offering the attempt to another agent as if it had never run.
      journal: [{ type: "job_accept", ...fence }],
      journalLogBytes: 0,
      unsentLogBytes: 0,
      finished: false,
      fenced: false,
      acceptedAt: performance.now(),
    };
    stopOlderAttempts(jobs, msg, existing, say);
    jobs.add(job);
    // With the attempt's first frames (one batch, one call on the server) rather than alone.
    wire.sendJobFrame(msg.spec, { type: "job_accept", ...fence });
    say(`job ${msg.jobId} accepted (${msg.spec.steps.map((s) => s.action).join(", ")})`);
    void runJob(this.host, job, workspace.value)
      .catch((err: unknown) => {
        say(`job ${job.jobId} crashed: ${err instanceof Error ? err.message : String(err)}`, "error");
      })
      .finally(() => {
        job.finishedAt = Date.now();
        jobs.forgetLater(job);
      });
  }

  /** The workspace a new attempt runs in, or why it cannot run here. */
  private workspaceFor(msg: ServerMessageOf<"job_offer">, draining: boolean): Result<string> {
    const { config, jobs } = this.d;
    if (draining) return err("agent is stopping");
    // An older attempt of this same job is about to stop: it does not count against the limit.
    const busy = jobs.all().filter((j) => !j.finished && !(j.jobId === msg.jobId && j.attempt <= msg.attempt));
    if (busy.length >= config.maxConcurrency) return err("agent is at its concurrency limit");
    if (msg.spec.jobId !== msg.jobId || msg.spec.attempt !== msg.attempt) return err("offer and spec disagree");
    const workspace = config.workspaces[msg.spec.projectId];
    if (!workspace) return err(`this agent does not serve project ${msg.spec.projectId}`);
    for (const step of msg.spec.steps) {
      const check = recheckStep(step, config.allowShell);
      if (!check.ok) return err(`step ${step.id}: ${check.error}`);
    }
    return ok(workspace);
  }
}
