// What one step runs with and what it comes to: the types shared by the executor and the
// modules it calls (files, processes, the log stream), kept apart so none imports the executor.
import type { Approver } from "./coder/approver.ts";
import type { PendingScan } from "./git-safety.ts";
import type { PathPolicy } from "./secrets.ts";

export type OutStream = "stdout" | "stderr" | "system";

export interface StepContext {
  workspace: string;
  allowShell: boolean;
  timeoutMs: number;
  /** Bytes of output forwarded per step; the rest is drained and replaced by a marker. */
  outputCapBytes: number;
  cancelGraceMs: number;
  /** Resolves when the sink can take more (backpressure). */
  out(stream: OutStream, data: Buffer): Promise<void>;
  signal: AbortSignal;
  /** Bytes of output kept for an artifact (0 to keep none). */
  captureBytes?: number;
  /** Secret-file globs for this workspace beyond the defaults. */
  pathPolicy?: PathPolicy;
  /** The agent's config file (holds its token): never readable. */
  agentConfigPath?: string;
  /** Strings never to let out of the step (the agent token, the lease token). */
  redact?: readonly (string | undefined)[];
  /** Puts a coding agent's tool call to the job's requester (code_task); without it all are denied. */
  approve?: Approver;
  /** The config scan started for this step's first git command (prepareStep in executor.ts). */
  gitScan?: PendingScan;
}

export interface StepRun {
  outcome: "succeeded" | "failed" | "cancelled";
  exitCode: number | null;
  error?: string;
  captured?: Buffer;
}
