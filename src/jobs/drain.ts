// The JobDO's effects loop: drains the outbox (ledger writes batched into one D1 round trip,
// sends, notifications) and keeps the object's single alarm at the next deadline.
import { isTerminal } from "../../protocol/index.ts";
import { getDb, incrementCounter } from "../ledger/store.ts";
import { errorMessage, log } from "../lib/log.ts";
import { NotifyLater } from "../notify/notify.ts";
import { raiseAlert } from "../sentinel/alerts.ts";
import { purgeAt } from "./alarm-work.ts";
import { LEDGER_KINDS, type LedgerQuery, ledgerStatement, runOutboxItem } from "./effects.ts";
import { type JobDO, PLAN_STALL_MS } from "./job-do.ts";
import type { JobState } from "./job-state.ts";
import { laneOf, MAX_OUTBOX_TRIES, type OutboxRow } from "./outbox.ts";
import { WITHOUT_JOB_CONFIRM_MS } from "./unreachable.ts";

/** The D1 counter of outbox items ever parked (skynet_outbox_parked_total). */
export const PARKED_COUNTER = "outbox_parked";

export async function drainOutbox(job: JobDO): Promise<void> {
  if (job.draining) {
    job.drainAgain = true;
    return;
  }
  job.draining = true;
  try {
    do {
      job.drainAgain = false;
      const rows = job.outbox.due(Date.now());
      // A lane whose item failed in this pass: its later items wait for the retry.
      const blocked = new Set<string>();
      for (let i = 0; i < rows.length; ) {
        const row = rows[i] as OutboxRow;
        const lane = laneOf(row.item.kind);
        const state = job.load();
        if (!state) return;
        if (lane !== null && blocked.has(lane)) {
          i += 1;
          continue;
        }
        if (LEDGER_KINDS.has(row.item.kind)) {
          // Consecutive ledger writes go to D1 as one batch: one round trip, one transaction.
          const group: OutboxRow[] = [];
          while (i < rows.length && LEDGER_KINDS.has((rows[i] as OutboxRow).item.kind))
            group.push(rows[i++] as OutboxRow);
          if (!(await writeLedger(job, state, group))) blocked.add("ledger");
          continue;
        }
        i += 1;
        job.outbox.inflight = row.id;
        try {
          const did = await runOutboxItem(job, state, row.item);
          job.count(`outbox.${did ?? row.item.kind}`);
          job.outbox.inflight = null;
          job.outbox.done(row.id);
        } catch (err) {
          job.outbox.inflight = null;
          if (err instanceof NotifyLater) {
            // Throttled or asked to slow down: not a failure, just later (at Telegram's pace).
            job.outbox.postpone(row.id, Date.now() + err.retryAfterMs);
            continue;
          }
          const outcome = job.outbox.failed(row.id, row.tries, Date.now(), failureText(err));
          log("warn", outcome === "parked" ? "outbox item parked" : "outbox item failed; will retry", {
            jobId: state.id,
            kind: row.item.kind,
            tries: row.tries + 1,
            error: errorMessage(err),
          });
          // A parked item is out of the way: the rest of its lane goes on.
          if (lane !== null && outcome === "retry") blocked.add(lane);
        }
      }
      // Inside the loop: a drain asked for while the alert is sent is not lost.
      await reportParked(job);
    } while (job.drainAgain);
  } finally {
    job.draining = false;
  }
}

/**
 * Tells the admins (the alerts path) and /metrics about newly parked items; when D1 or
 * Telegram is what is failing, tries again later rather than forgetting.
 */
async function reportParked(job: JobDO): Promise<void> {
  const now = Date.now();
  const fresh = job.outbox.unreported(now);
  if (fresh.length === 0) return;
  const jobId = job.load()?.id ?? "unknown";
  const kinds = [...new Set(fresh.map((p) => p.kind))].join(", ");
  const ids = fresh.map((p) => p.id);
  try {
    // The alert is deduplicated by key, so raising it again after a failed count is harmless.
    await raiseAlert(
      job.env,
      `outbox_parked:${jobId}`,
      `job ${jobId}: ${fresh.length} side effect(s) (${kinds}) failed ${MAX_OUTBOX_TRIES} times and are parked; ` +
        `replay with POST /api/jobs/${jobId}/outbox/replay. Last error: ${fresh[0]?.error ?? "unknown"}`,
      now,
    );
    await incrementCounter(getDb(job.env.DB), PARKED_COUNTER, fresh.length);
    job.outbox.reportedNow(ids);
  } catch (err) {
    log("error", "could not report parked outbox items", { jobId, error: errorMessage(err) });
    job.outbox.reportLater(ids, now);
  }
}

/** Writes a group of ledger items in one D1 batch; false when the ledger lane must wait for a retry. */
async function writeLedger(job: JobDO, state: JobState, group: OutboxRow[]): Promise<boolean> {
  const db = getDb(job.env.DB);
  const planned = group.map((row) => ({ row, statement: ledgerStatement(job, db, state, row.item) }));
  const queries = planned.flatMap((p) => p.statement?.queries ?? []);
  job.outbox.inflight = group.find((r) => r.item.kind === "ledger")?.id ?? null;
  try {
    if (queries.length === 1) await queries[0];
    else if (queries.length > 1) await db.batch(queries as [LedgerQuery, ...LedgerQuery[]]);
  } catch (err) {
    job.outbox.inflight = null;
    if (group.length > 1) {
      // One bad item fails the whole batch: write them one by one, in order, so the items
      // before it land and only it counts the failure (and, in the end, is parked).
      for (const row of group) if (!(await writeLedger(job, state, [row]))) return false;
      return true;
    }
    const row = group[0] as OutboxRow;
    const outcome = job.outbox.failed(row.id, row.tries, Date.now(), failureText(err));
    log("warn", outcome === "parked" ? "ledger write parked" : "ledger write failed; will retry", {
      jobId: state.id,
      kind: row.item.kind,
      tries: row.tries + 1,
      error: errorMessage(err),
    });
    return outcome === "parked";
  }
  job.outbox.inflight = null;
  for (const { row, statement } of planned) {
    statement?.done?.();
    job.count(`outbox.${row.item.kind}${statement ? "" : "_unchanged"}`);
    job.outbox.done(row.id);
  }
  if (queries.length > 1) {
    job.count("d1.batch");
    for (let n = 0; n < queries.length; n++) job.count("d1.batched_statements");
  }
  return true;
}

export async function scheduleJobAlarm(job: JobDO, s: JobState): Promise<void> {
  const times: number[] = [];
  const ob = job.outbox.nextAt();
  if (ob !== null) times.push(ob);
  if (s.status === "CREATED" && !s.planningStarted) times.push(Date.now());
  if (s.status === "CREATED" && s.planningStarted) times.push((s.planningStartedAt ?? Date.now()) + PLAN_STALL_MS);
  if (!isTerminal(s.status)) {
    if (s.status === "PLANNED" && s.approvalDeadline !== null) times.push(s.approvalDeadline);
    if (s.status === "RUNNING" && s.unreachableSince) {
      // Unreachable: the lease has already expired; only the bound on waiting for the result counts.
      times.push(s.unreachableSince + job.config.unreachableTimeoutS * 1000);
      if (s.withoutJobAt) times.push(s.withoutJobAt + WITHOUT_JOB_CONFIRM_MS);
    } else if (s.status === "RUNNING") {
      if (s.lease) times.push(s.lease.expiresAt);
      if (s.startedAt !== null) times.push(s.startedAt + job.runLimitS(s) * 1000);
    }
    if (s.status === "QUEUED" && s.queuedAt !== null) times.push(s.queuedAt + job.config.jobTimeoutS * 1000);
  }
  // A final job with items still owed (parked ones included) keeps its storage until they are done.
  const purge = purgeAt(job, s);
  if (purge !== null && job.outbox.size() === 0) times.push(purge);
  if (times.length === 0) {
    await job.ctx.storage.deleteAlarm();
    return;
  }
  // Outbox rows due "now" (next_at 0) and past deadlines fire as soon as possible.
  const next = Math.max(Math.min(...times), Date.now() + 5);
  // Only ever move the alarm earlier: one that fires early just re-checks and re-arms, so the
  // lease renewals that push deadlines later (every agent message) cost no storage write.
  const current = await job.ctx.storage.getAlarm();
  if (current === null || next < current) await job.ctx.storage.setAlarm(next);
}

/** The error with its cause (drizzle wraps D1's own message in "Failed query: …"). */
function failureText(err: unknown): string {
  const cause = err instanceof Error && err.cause !== undefined ? `: ${errorMessage(err.cause)}` : "";
  return `${errorMessage(err)}${cause}`;
}
