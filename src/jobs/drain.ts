// The JobDO's effects loop: drains the outbox (ledger writes batched into one D1 round trip,
// sends, notifications), one drain at a time per object.
import { isTerminal } from "../../protocol/index.ts";
import { getDb, incrementCounter } from "../ledger/store.ts";
import { errorMessage, log } from "../lib/log.ts";
import { NotifyLater } from "../notify/notify.ts";
import { raiseAlert } from "../sentinel/alerts.ts";
import { smallLog } from "./archive-log.ts";
import { LEDGER_KINDS, type LedgerQuery, ledgerWrites, runOutboxItem } from "./effects.ts";
import type { JobContext } from "./job-context.ts";
import type { JobState } from "./job-state.ts";
import { laneOf, MAX_OUTBOX_TRIES, type OutboxRow } from "./outbox-items.ts";

/** The D1 counter of outbox items ever parked (skynet_outbox_parked_total). */
export const PARKED_COUNTER = "outbox_parked";

/**
 * One object's drain: a drain asked for while one runs, or a commit made meanwhile (the answer
 * commits its own notification from inside the drain), makes the running one go round again.
 */
export class OutboxDrain {
  private running = false;
  private again = false;

  /** Called on every commit: new effects while draining are drained in this drain. */
  committed(): void {
    if (this.running) this.again = true;
  }

  async run(job: JobContext): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        if (!(await drainPass(job))) return; // the job's storage is gone
        // Inside the loop: a drain asked for while the alert is sent is not lost.
        await reportParked(job);
      } while (this.again);
    } finally {
      this.running = false;
    }
  }
}

/** One pass over the items due now, in lane order; false when the job's storage is gone. */
async function drainPass(job: JobContext): Promise<boolean> {
  const outbox = job.outbox;
  let settle = true;
  try {
    settle = await performDue(job);
    return settle;
  } finally {
    // The rows the pass worked on are written once, at its end (unless the storage is gone).
    // A final job expects no further commit to drop what was done from its record.
    if (settle) outbox.settle(isTerminal(job.peek()?.status ?? "CREATED"));
    else outbox.forget();
  }
}

async function performDue(job: JobContext): Promise<boolean> {
  const rows = job.outbox.due(job.now());
  // A lane whose item failed in this pass: its later items wait for the retry.
  const blocked = new Set<string>();
  for (let i = 0; i < rows.length; ) {
    const row = rows[i] as OutboxRow;
    const lane = laneOf(row.item.kind);
    const state = job.peek();
    if (!state) return false;
    if (lane !== null && blocked.has(lane)) {
      i += 1;
      continue;
    }
    if (LEDGER_KINDS.has(row.item.kind)) {
      // Consecutive ledger writes go to D1 as one batch: one round trip, one transaction.
      const group: OutboxRow[] = [];
      while (i < rows.length && LEDGER_KINDS.has((rows[i] as OutboxRow).item.kind)) group.push(rows[i++] as OutboxRow);
      // A final job's archive due in this pass: a small log rides on the row this batch writes
      // (no statement, row or round trip of its own), and the archive item is done with it.
      const archive = isTerminal(state.status) ? rows.slice(i).find((r) => r.item.kind === "archive_log") : undefined;
      const finalLog = archive ? smallLog(job.logs) : null;
      const wrote = await writeLedger(job, state, group, finalLog);
      if (wrote === "blocked") blocked.add("ledger");
      if (wrote === "logged" && archive) {
        job.count("outbox.archive_log_ledger");
        job.outbox.done(archive);
        rows.splice(rows.indexOf(archive), 1);
      }
      continue;
    }
    i += 1;
    try {
      const did = await runOutboxItem(job, state, row.item);
      job.count(`outbox.${did ?? row.item.kind}`);
      job.outbox.done(row);
    } catch (err) {
      if (err instanceof NotifyLater) {
        // Throttled or asked to slow down: not a failure, just later (at Telegram's pace).
        job.outbox.postpone(row, job.now() + err.retryAfterMs);
        continue;
      }
      const outcome = job.outbox.failed(row, job.now(), failureText(err));
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
  return true;
}

/**
 * Tells the admins (the alerts path) and /metrics about newly parked items; when D1 or
 * Telegram is what is failing, tries again later rather than forgetting.
 */
async function reportParked(job: JobContext): Promise<void> {
  const now = job.now();
  const fresh = job.outbox.unreported(now);
  if (fresh.length === 0) return;
  const jobId = job.peek()?.id ?? "unknown";
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

/**
 * Writes a group of ledger items in one D1 batch, with `finalLog` on the job's row when given:
 * "blocked" when the ledger lane must wait for a retry, "logged" when the log was written too.
 */
async function writeLedger(
  job: JobContext,
  state: JobState,
  group: OutboxRow[],
  finalLog: string | null = null,
): Promise<"written" | "logged" | "blocked"> {
  const db = getDb(job.env.DB);
  const statement = ledgerWrites(
    job,
    db,
    state,
    group.map((row) => row.item),
    finalLog,
  );
  const queries = statement.queries;
  try {
    if (queries.length === 1) await queries[0];
    else if (queries.length > 1) await db.batch(queries as [LedgerQuery, ...LedgerQuery[]]);
  } catch (err) {
    if (group.length > 1) {
      // One bad item fails the whole batch: write them one by one, in order, so the items
      // before it land and only it counts the failure (and, in the end, is parked). The log is
      // left to its own archive item.
      for (const row of group) if ((await writeLedger(job, state, [row])) === "blocked") return "blocked";
      return "written";
    }
    const row = group[0] as OutboxRow;
    const outcome = job.outbox.failed(row, job.now(), failureText(err));
    log("warn", outcome === "parked" ? "ledger write parked" : "ledger write failed; will retry", {
      jobId: state.id,
      kind: row.item.kind,
      tries: row.tries + 1,
      error: errorMessage(err),
    });
    return outcome === "parked" ? "written" : "blocked";
  }
  statement.done?.();
  for (const row of group) {
    job.count(`outbox.${row.item.kind}${row.item.kind === "ledger" && statement.unchanged ? "_unchanged" : ""}`);
    job.outbox.done(row);
  }
  if (queries.length > 1) {
    job.count("d1.batch");
    for (let n = 0; n < queries.length; n++) job.count("d1.batched_statements");
  }
  return finalLog === null ? "written" : "logged";
}

/**
 * The error with its cause, the cause first: drizzle wraps D1's own message in "Failed query: …"
 * with the whole statement, and the stored error is cut at 500 characters.
 */
function failureText(err: unknown): string {
  if (err instanceof Error && err.cause !== undefined) return `${errorMessage(err.cause)} (${errorMessage(err)})`;
  return errorMessage(err);
}
