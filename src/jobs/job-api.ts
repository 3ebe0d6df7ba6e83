// What callers of a JobDO see besides the view: who acts, and the outcomes of its RPCs.
import type { JobStatus, JobView } from "../../protocol/index.ts";

export interface Actor {
  id: string;
  isAdmin: boolean;
}

export interface CreateJobInput {
  jobId: string;
  projectId: string;
  intent: string;
  userId: string | null;
  chatId: string | null;
  messageId?: number | null;
}

export type JobResult =
  | { ok: true; job: JobView }
  | { ok: false; code: "not_found" | "forbidden" | "conflict"; message: string };
export type DispatchOutcome = "offered" | "pending" | "duplicate" | "stale";
export type FenceResult =
  | { ok: true }
  | { ok: false; code: "stale_lease" | "lease_ended" | "not_found" | "bad_message"; message: string };

/** The refusal for anything carrying the lease of a job that is already final. */
export function leaseEnded(state: { id: string; status: JobStatus }): FenceResult {
  return { ok: false, code: "lease_ended", message: `job ${state.id} is ${state.status}: its lease has ended` };
}
