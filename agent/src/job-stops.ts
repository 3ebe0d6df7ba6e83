// When the server stops an attempt running here: a cancel, a newer attempt of the same job, or an
// error frame saying the attempt's lease is no longer current. Stopping is always by the job's
// abort signal (the step's process group is then ended, contain.ts); an attempt the server called
// stale is also fenced: nothing more is sent for it.
import type { ServerMessageOf } from "../../protocol/index.ts";
import type { Job, JobBook } from "./job-book.ts";

type Say = (line: string) => void;

export function cancelJob(jobs: JobBook, msg: ServerMessageOf<"job_cancel">, say: Say): void {
  const job = jobs.get(msg.jobId, msg.attempt);
  if (!job || job.finished) return;
  say(`job ${msg.jobId} attempt ${msg.attempt} cancelled by the server: ${msg.reason}`);
  job.abort.abort();
}

/** An error about a frame applies only to the (job, attempt) that frame was about. */
export function serverError(jobs: JobBook, msg: ServerMessageOf<"error">, say: Say): void {
  const about = msg.jobId ? ` (job ${msg.jobId}${msg.attempt ? ` attempt ${msg.attempt}` : ""})` : "";
  if (!msg.jobId || msg.attempt === undefined) {
    // It cannot be told which attempt it is about: it never stops a job.
    say(`server error ${msg.code}${about}: ${msg.message}`);
    return;
  }
  const job = jobs.get(msg.jobId, msg.attempt);
  if (!job) {
    say(`server error ${msg.code}${about} ignored: this agent runs no such attempt: ${msg.message}`);
    return;
  }
  // stale_lease: another attempt holds the job; lease_ended: the job is final. Either way this
  // attempt is over here: stop it and send nothing more for it.
  if (msg.code !== "stale_lease" && msg.code !== "lease_ended") {
    say(`server error ${msg.code}${about}: ${msg.message}`);
    return;
  }
  if (!job.finished) job.stoppedByFence = true;
  if (!job.fenced) {
    say(
      `job ${job.jobId} attempt ${job.attempt}: the server no longer recognises it (${msg.message})${job.finished ? "" : "; stopping it"}`,
    );
  }
  job.fenced = true;
  if (!job.finished) job.abort.abort();
}

/** A newer attempt means the server has given up on the older ones: they stop here too. */
export function stopOlderAttempts(
  jobs: JobBook,
  offered: { jobId: string; attempt: number },
  existing: Job | undefined,
  say: Say,
): void {
  for (const old of jobs.all()) {
    if (old.jobId !== offered.jobId || old.finished || (old.attempt >= offered.attempt && old !== existing)) continue;
    say(`job ${old.jobId}: attempt ${offered.attempt} offered, so attempt ${old.attempt} is stopped`);
    old.fenced = true;
    old.abort.abort();
  }
}
