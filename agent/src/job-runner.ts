// Runs an accepted job's steps in order on the agent: step events, log chunks, artifacts (the
// captured output of test and build steps, uploaded through the Worker with their sha256), and
// the final result. Stops at the first failed or cancelled step.
import { createHash } from "node:crypto";
import type {
  ArtifactRef,
  ExecutionResult,
  ExecutionSpec,
  FencedAgentMessage,
  StepResult,
} from "../../protocol/index.ts";
import { type AgentConfig, pathPolicyFor } from "./config.ts";
import { executeStep } from "./executor.ts";
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
}

/** What a running job needs from the agent around it. */
export interface JobHost {
  config: AgentConfig;
  send(job: RunningJob, msg: FencedAgentMessage): Promise<void>;
  say(line: string): void;
}

export async function runJob(host: JobHost, job: RunningJob, workspace: string): Promise<void> {
  const fence = { jobId: job.jobId, attempt: job.attempt, leaseToken: job.leaseToken };
  const results: StepResult[] = [];
  const artifacts: ArtifactRef[] = [];
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
    await host.send(job, {
      type: "step_started",
      ...fence,
      stepId: step.id,
      startedAt: startedAt.toISOString(),
    });
    const run = await executeStep(step, {
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
    });
    await job.chunker.flush(true);
    const durationMs = Date.now() - startedAt.getTime();
    if (run.captured && run.captured.length > 0 && !job.fenced) {
      const ref = await uploadArtifact(
        host.config,
        job,
        `${step.id}-${step.action}.log`,
        run.captured,
        step.id,
        host.say,
      );
      if (ref) {
        artifacts.push(ref);
        await host.send(job, { type: "artifact_ready", ...fence, artifact: ref });
      }
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
  const result: ExecutionResult = {
    jobId: job.jobId,
    attempt: job.attempt,
    status,
    steps: results,
    artifacts,
    ...(jobError ? { error: jobError.slice(0, 4000) } : {}),
  };
  await host.send(job, { type: "job_finished", ...fence, status, result });
  job.finished = true;
  host.say(`job ${job.jobId} ${status.toLowerCase()}${jobError ? `: ${jobError}` : ""}`);
}

export async function uploadArtifact(
  config: AgentConfig,
  job: RunningJob,
  name: string,
  body: Buffer,
  stepId: string,
  say: (line: string) => void = () => undefined,
): Promise<ArtifactRef | null> {
  const sha256 = createHash("sha256").update(body).digest("hex");
  const url = `${config.serverUrl}/agent/jobs/${job.jobId}/artifacts/${encodeURIComponent(name)}`;
  try {
    const res = await fetch(url, {
      method: "PUT",
      headers: {
        Authorization: `Bearer ${config.token}`,
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Length": String(body.length),
        "X-Skynet-Attempt": String(job.attempt),
        "X-Skynet-Lease": job.leaseToken,
        "X-Skynet-Sha256": sha256,
      },
      body: new Uint8Array(body),
    });
    if (res.status !== 201) {
      say(`artifact ${name} upload refused: ${res.status} ${(await res.text()).slice(0, 200)}`);
      return null;
    }
    return { name, size: body.length, sha256, contentType: "text/plain; charset=utf-8", stepId };
  } catch (err) {
    say(`artifact ${name} upload failed: ${err instanceof Error ? err.message : String(err)}`);
    return null;
  }
}
