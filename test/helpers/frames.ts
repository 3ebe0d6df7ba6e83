// The frames a test agent sends, spelled once: most tests end a job the same way, and a change
// to the finish frame's shape should be made here rather than in every test.
import type { AgentMessageOf, ExecutionResult } from "../../protocol/index.ts";

/** What fences every job frame: the job, its attempt and the lease the offer carried. */
export type Fence = { jobId: string; attempt: number; leaseToken: string };

/**
 * The agent's report that the job's one step `s1`, `action`, exited with `exitCode`: the job
 * SUCCEEDED on 0 and FAILED otherwise. `more` adds result fields (error, artifactsNotStored).
 */
export function jobFinished(
  fence: Fence,
  {
    action = "git_status",
    exitCode = 0,
    more = {},
  }: { action?: string; exitCode?: number; more?: Partial<ExecutionResult> } = {},
): AgentMessageOf<"job_finished"> {
  const status = exitCode === 0 ? "SUCCEEDED" : "FAILED";
  const outcome = exitCode === 0 ? "succeeded" : "failed";
  return {
    type: "job_finished",
    ...fence,
    status,
    result: {
      jobId: fence.jobId,
      attempt: fence.attempt,
      status,
      steps: [{ stepId: "s1", action, outcome, exitCode }],
      artifacts: [],
      ...more,
    },
  };
}
