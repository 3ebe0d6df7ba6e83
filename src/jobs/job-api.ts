// What callers of a JobDO see besides the view: who acts, and the outcomes of its RPCs.

import type { JobStatus, JobView } from "../../protocol/index.ts";
import { err, ok, type Result } from "../../protocol/result.ts";
import type { FollowUpContext } from "../planners/follow-up.ts";

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
  /** A Telegram follow-up's earlier job (context for the planner). */
  followUp?: FollowUpContext | null;
}

/** Why the job refused a decision or a gateway spec. */
export interface JobRefusal {
  code: "not_found" | "forbidden" | "conflict";
  message: string;
}
export type JobResult = Result<JobView, JobRefusal>;
export type DispatchOutcome = "offered" | "pending" | "duplicate" | "stale";
/** Why the job refused an agent's message or heartbeat (the registry tells the agent the code). */
export interface FenceRefusal {
  code: "stale_lease" | "lease_ended" | "not_found" | "bad_message";
  message: string;
}
export type FenceResult = Result<void, FenceRefusal>;

export const accepted = (): FenceResult => ok(undefined);
export const refused = (code: FenceRefusal["code"], message: string): { ok: false; error: FenceRefusal } =>
  err({ code, message });
export const noSuchJob = (): FenceResult => refused("not_found", "no such job");

/** The refusal for anything carrying the lease of a job that is already final. */
export function leaseEnded(state: { id: string; status: JobStatus }): { ok: false; error: FenceRefusal } {
  return refused("lease_ended", `job ${state.id} is ${state.status}: its lease has ended`);
}
