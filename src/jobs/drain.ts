// The JobDO's effects loop: drains the outbox (ledger writes batched into one D1 round trip,
// sends, notifications) and keeps the object's single alarm at the next deadline.
import { isTerminal } from "../../protocol/index.ts";
import { getDb } from "../ledger/store.ts";
import { errorMessage, log } from "../lib/log.ts";
import { NotifyLater } from "../notify/notify.ts";
import { LEDGER_KINDS, type LedgerQuery, ledgerStatement, runOutboxItem } from "./effects.ts";
import { type JobDO, PLAN_STALL_MS } from "./job-do.ts";
import type { JobState } from "./job-state.ts";
import type { OutboxRow } from "./outbox.ts";
import { WITHOUT_JOB_CONFIRM_MS } from "./unreachable.ts";

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
      for (let i = 0; i < rows.length; ) {
        const row = rows[i] as OutboxRow;
        const state = job.load();
        if (!state) return;
        if (LEDGER_KINDS.has(row.item.kind)) {
          // Consecutive ledger writes go to D1 as one batch: one round trip, one transaction.
          const group: OutboxRow[] = [];
          while (i < rows.length && LEDGER_KINDS.has((rows[i] as OutboxRow).item.kind))
            group.push(rows[i++] as OutboxRow);
          if (!(await writeLedger(job, state, group))) break;
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
          log("warn", "outbox item failed; will retry", {
            jobId: state.id,
            kind: row.item.kind,
            tries: row.tries,
            error: errorMessage(err),
          });
          job.outbox.failed(row.id, row.tries, Date.now());
          // A notification renders the current state, so nothing depends on its order; the
          // ledger, events and sends keep theirs: later items wait for this one.
          if (row.item.kind === "notify") continue;
          break;
        }
      }
    } while (job.drainAgain);
  } finally {
    job.draining = false;
  }
}

/** Writes a group of ledger items in one D1 batch; false (and a retry later) on failure. */
async function writeLedger(job: JobDO, state: JobState, group: OutboxRow[]): Promise<boolean> {
  const db = getDb(job.env.DB);
  const planned = group.map((row) => ({ row, statement: ledgerStatement(job, db, state, row.item) }));
  const queries = planned.flatMap((p) => (p.statement ? [p.statement.query] : []));
  job.outbox.inflight = group.find((r) => r.item.kind === "ledger")?.id ?? null;
  try {
    if (queries.length === 1) await queries[0];
    else if (queries.length > 1) await db.batch(queries as [LedgerQuery, ...LedgerQuery[]]);
  } catch (err) {
    job.outbox.inflight = null;
    const first = group[0] as OutboxRow;
    log("warn", "ledger write failed; will retry", {
      jobId: state.id,
      items: group.length,
      error: errorMessage(err),
    });
    job.outbox.failed(first.id, first.tries, Date.now());
    return false;
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
