// Runs an accepted job's steps in order on the agent: step events, log chunks, artifacts (the
// captured output of test and build steps, uploaded through the Worker with their sha256), and
// the final result. Stops at the first failed or cancelled step. Artifact uploads go on in the
// background, retried across blips; job_finished waits for them (the lease must still be held
// to store one) and lists any that could finally not be stored, with the reason.
import {
  type ArtifactRef,
  type ExecutionResult,
  type ExecutionSpec,
  type FencedAgentMessage,
  type StepResult,
  writes,
} from "../../protocol/index.ts";
import { type UploadPolicy, uploadArtifact } from "./artifact-upload.ts";
import type { Approver } from "./coder/run.ts";
import { type AgentConfig, pathPolicyFor } from "./config.ts";
import { executeStep, prepareStep, type StepRun } from "./executor.ts";
import type { LogChunker } from "./log-stream.ts";

const CAPTURE_BYTES = 5 * 1024 * 1024;

export type Fence = { jobId: string; attempt: number; leaseToken: string };

export interface RunningJob extends Fence {
  spec: ExecutionSpec;
  abort: AbortController;
  chunker: LogChunker;
  /** Frames kept for replay after a reconnect (the server drops what it already has). */
  journal: FencedAgentMessage[];
  journalLogBytes: number;
  /** Log characters journalled while offline, not yet replayed (the journal's suffix). */
  unsentLogBytes: number;
  finished: boolean;
  /** The server said this attempt is stale: nothing more is sent for it. */
  fenced: boolean;
  /**
   * When this process took the attempt (monotonic ms, performance.now()): a replayed accept says
   * how long ago, as the first one did. Unknown for a job a previous process ran.
   */
  acceptedAt?: number;
}

/** How a frame is sent (JobReporter.send). */
export interface SendOptions {
  spawnsNext?: boolean;
  /** Called (at most once) while this frame's journal write waits for the disk: the main thread's
   * part of starting other work (spawning a process) overlaps the fsync. Not called when nothing
   * is written; the caller does that work itself then. */
  meanwhile?: () => void;
}

/** What a running job needs from the agent around it. */
export interface JobHost {
  config: AgentConfig;
  /** opts: see SendOptions above. */
  send(job: RunningJob, msg: FencedAgentMessage, opts?: SendOptions): Promise<void>;
  say(line: string): void;
  uploadPolicy: UploadPolicy;
  /** Aborted when the agent stops: pending uploads give up. */
  giveUp: AbortSignal;
  /** Resolves once the server surely has every frame sent so far for this job (or it stopped). */
  confirmed?(job: RunningJob): Promise<void>;
  /** The approver for a code_task step's tool calls (unset: every one is denied). */
  approverFor?(job: RunningJob, stepId: string): Approver;
  /** Called just before a step that waited for the server's confirmation is spawned (the
   * journal notes it may now have effects). */
  starting?(job: RunningJob, stepId: string): Promise<void>;
}

type NotStored = NonNullable<ExecutionResult["artifactsNotStored"]>[number];

export async function runJob(host: JobHost, job: RunningJob, workspace: string): Promise<void> {
  const fence = { jobId: job.jobId, attempt: job.attempt, leaseToken: job.leaseToken };
  const results: StepResult[] = [];
  const artifacts: ArtifactRef[] = [];
  const notStored: NotStored[] = [];
  const uploads: Promise<void>[] = [];
  // Each upload reports as soon as it is stored, so the server has it even if the job runs on.
  const upload = async (name: string, body: Buffer, stepId: string) => {
    const out = await uploadArtifact(
      host.config,
      job,
      { name, body, stepId },
      { policy: host.uploadPolicy, giveUp: host.giveUp, say: host.say },
    );
    if (out.ok) {
      artifacts.push(out.ref);
      await host.send(job, { type: "artifact_ready", ...fence, artifact: out.ref });
    } else notStored.push({ name, stepId, reason: out.reason });
  };
  let status: ExecutionResult["status"] = "SUCCEEDED";
  let jobError: string | undefined;
  // The job's own limit bounds every step's timeout as well as the step's.
  const deadline = Date.now() + job.spec.timeoutS * 1000;
  for (const step of job.spec.steps) {
    if (status !== "SUCCEEDED" || job.abort.signal.aborted) {
      if (job.abort.signal.aborted && status === "SUCCEEDED") status = "CANCELLED";
      results.push({ stepId: step.id, action: step.action, outcome: "skipped", exitCode: null });
      continue;
    }
    const startedAt = new Date();
    job.chunker.setStep(step.id);
    // A step that changes things starts only once the server knows it started: a server that
    // never heard of it would take the attempt for one that never ran, and run it again elsewhere.
    // It is journaled twice (announced, then running once confirmed). Any other step is spawned
    // right after its announcement, so one write saying it runs stands for both: a successor
    // finding it reports the step as having died while it ran (it may have), and one finding
    // nothing of it reports it as not run (its step_started had not been sent either).
    const confirmFirst = writes(step.risk);
    // The work the spawn needs (a git step's config scan) is started while the journal write
    // waits for the disk, so neither waits for the other. After a wait for confirmation
    // (unbounded, offline) it is started only then: a scan must be fresh.
    let prepared: ReturnType<typeof prepareStep> | undefined;
    const prepare = () => {
      prepared ??= prepareStep(step, workspace);
    };
    const started = { type: "step_started" as const, ...fence, stepId: step.id, startedAt: startedAt.toISOString() };
    await host.send(job, started, confirmFirst ? {} : { spawnsNext: true, meanwhile: prepare });
    if (confirmFirst) await host.confirmed?.(job);
    const notStarted: StepRun | null = job.abort.signal.aborted
      ? { outcome: "cancelled", exitCode: null, error: "stopped before the step started" }
      : null;
    if (!notStarted && confirmFirst) {
      prepare();
      await host.starting?.(job, step.id);
    }
    const run =
      notStarted ??
      (await executeStep(step, {
        ...(prepared ?? prepareStep(step, workspace)),
        workspace,
        allowShell: host.config.allowShell,
        timeoutMs: Math.max(1, Math.min(step.timeoutS * 1000, deadline - Date.now())),
        outputCapBytes: host.config.outputCapBytes,
        cancelGraceMs: host.config.cancelGraceMs,
        signal: job.abort.signal,
        out: (stream, data) => job.chunker.write(stream, data),
        captureBytes: step.action === "run_tests" || step.action === "build_project" ? CAPTURE_BYTES : 0,
        pathPolicy: pathPolicyFor(host.config, job.spec.projectId),
        agentConfigPath: host.config.configPath,
        redact: [host.config.token, job.leaseToken],
        ...(host.approverFor ? { approve: host.approverFor(job, step.id) } : {}),
      }));
    await job.chunker.flush(true);
    const durationMs = Date.now() - startedAt.getTime();
    if (run.captured && run.captured.length > 0 && !job.fenced) {
      uploads.push(upload(`${step.id}-${step.action}.log`, run.captured, step.id));
    }
    await host.send(job, {
      type: "step_finished",
      ...fence,
      stepId: step.id,
      outcome: run.outcome,
      exitCode: run.exitCode,
      durationMs,
      ...(run.error ? { error: run.error.slice(0, 4000) } : {}),
    });
    results.push({
      stepId: step.id,
      action: step.action,
      outcome: run.outcome,
      exitCode: run.exitCode,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      durationMs,
      ...(run.error ? { error: run.error.slice(0, 4000) } : {}),
    });
    if (run.outcome === "cancelled") status = "CANCELLED";
    else if (run.outcome === "failed") {
      status = "FAILED";
      jobError = `step ${step.id} (${step.action}) failed: ${run.error ?? `exit code ${run.exitCode}`}`;
    }
  }
  await Promise.all(uploads);
  if (notStored.length > 0 && !job.fenced) {
    // Said in the job's log too, where a person reading the job sees it.
    job.chunker.setStep(undefined);
    for (const n of notStored)
      await job.chunker.write("system", Buffer.from(`[artifact ${n.name} was not stored: ${n.reason}]\n`));
    await job.chunker.flush(true);
  }
  const result: ExecutionResult = {
    jobId: job.jobId,
    attempt: job.attempt,
    status,
    steps: results,
    artifacts,
    ...(notStored.length > 0 ? { artifactsNotStored: notStored } : {}),
    ...(jobError ? { error: jobError.slice(0, 4000) } : {}),
  };
  await host.send(job, { type: "job_finished", ...fence, status, result });
  job.finished = true;
  host.say(`job ${job.jobId} ${status.toLowerCase()}${jobError ? `: ${jobError}` : ""}`);
}
