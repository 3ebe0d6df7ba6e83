// Performs one outbox item for a JobDO. Each effect is idempotent, so a retry after a partial
// failure is harmless (ledger upserts, events kept by seq on the job's row, sends deduplicated by
// the JobDO).
import { writeAnswer } from "../answers/index.ts";
import { getEngine } from "../execution/engine.ts";
import { EVENTS_PER_STATEMENT, eventJson } from "../ledger/job-events.ts";
import { metricsQuery } from "../ledger/metrics-query.ts";
import { appendAuditQuery, appendJobEventsQuery, type Db, getDb, upsertJobQuery } from "../ledger/store.ts";
import { type NotifyMemo, notifyJob } from "../notify/notify.ts";
import { archiveLog } from "./archive-log.ts";
import { dispatchDirectly } from "./dispatch.ts";
import type { JobContext } from "./job-context.ts";
import { type JobState, ledgerContent, toLedgerRow, viewOf } from "./job-state.ts";
import type { OutboxItem } from "./outbox-items.ts";

export const LEDGER_KINDS: ReadonlySet<OutboxItem["kind"]> = new Set(["ledger", "event", "audit"]);

export type LedgerQuery =
  | ReturnType<typeof upsertJobQuery>
  | ReturnType<typeof appendJobEventsQuery>
  | ReturnType<typeof appendAuditQuery>
  | NonNullable<ReturnType<typeof metricsQuery>>;

type EventItem = Extract<OutboxItem, { kind: "event" }>;

export interface LedgerWrite {
  queries: LedgerQuery[];
  /** Runs once the queries are written. */
  done?: () => void;
  /** A snapshot item that had nothing new to write. */
  unchanged: boolean;
}

/**
 * The D1 statements for consecutive ledger items (one batch: one round trip, one transaction):
 * the job metrics first (they read which events the row holds before the append), then the
 * job's row — its snapshot, when it changed, and the events appended by the same upsert, one
 * row written for both — then the audit entries.
 */
export function ledgerWrites(
  job: Pick<JobContext, "memo" | "setMemo">,
  db: Db,
  state: JobState,
  items: OutboxItem[],
  /** A final job's small log (archive-log.ts), written by the same statement as its row. */
  log: string | null = null,
): LedgerWrite {
  const row = { ...toLedgerRow(state), ...(log === null ? {} : { log }) };
  let snapshot: { before: ReturnType<typeof toLedgerRow> | null; key: string } | null = null;
  let unchanged = false;
  if (items.some((i) => i.kind === "ledger")) {
    // Step events change nothing the ledger row holds: skip snapshots identical but for the time.
    const key = ledgerContent(state);
    const written = job.memo<string>("ledger_written");
    // What this object last wrote (the ledger row has no other writer) spares unchanged indexes.
    if (written === key) unchanged = true;
    else snapshot = { before: written ? (JSON.parse(written) as ReturnType<typeof toLedgerRow>) : null, key };
  }
  const events = items.filter((i): i is EventItem => i.kind === "event");
  const notAfter = snapshot ? row.updatedAt : null;
  const queries: LedgerQuery[] = [];
  const metrics = metricsQuery(db, state.id, events, notAfter);
  if (metrics) queries.push(metrics);
  const json = events.map((e) =>
    eventJson({
      seq: e.seq,
      fromStatus: e.fromStatus,
      toStatus: e.toStatus,
      event: e.event,
      detail: e.detail ?? undefined,
      at: e.at,
    }),
  );
  const first = json.slice(0, EVENTS_PER_STATEMENT);
  if (snapshot) queries.push(upsertJobQuery(db, row, snapshot.before, first));
  else if (first.length > 0 || log !== null) queries.push(appendJobEventsQuery(db, row, first));
  for (let i = EVENTS_PER_STATEMENT; i < json.length; i += EVENTS_PER_STATEMENT)
    queries.push(appendJobEventsQuery(db, row, json.slice(i, i + EVENTS_PER_STATEMENT), notAfter));
  for (const item of items) {
    if (item.kind !== "audit") continue;
    queries.push(
      appendAuditQuery(db, {
        actor: item.actor,
        action: item.action,
        jobId: state.id,
        detail: item.detail,
        at: item.at,
      }),
    );
  }
  const key = snapshot?.key;
  return { queries, unchanged, ...(key ? { done: () => job.setMemo("ledger_written", key) } : {}) };
}

/** Performs the item; returns what it did, for the job's operation counters. */
export async function runOutboxItem(job: JobContext, state: JobState, item: OutboxItem): Promise<string | undefined> {
  const env = job.env;
  switch (item.kind) {
    case "ledger":
    case "event":
    case "audit": {
      const db = getDb(env.DB);
      const statement = ledgerWrites(job, db, state, [item]);
      if (statement.queries.length === 0) return `${item.kind}_unchanged`;
      await db.batch(statement.queries as [LedgerQuery, ...LedgerQuery[]]);
      statement.done?.();
      return;
    }
    case "enqueue": {
      // Straight to the registry (no queue hop). Once the registry has the attempt, its own
      // storage carries it onward (re-offers, and this job's lease deadlines behind them), so
      // the queue message goes only when the hand-over failed. Until one of the two has it,
      // this item stays in the outbox: a failed send is retried like any effect.
      const direct = await dispatchDirectly(job, item.attempt);
      if (direct === "enqueue_direct_failed") await env.DISPATCH_QUEUE.send({ jobId: state.id, attempt: item.attempt });
      return direct;
    }
    case "cancel_agent":
      await getEngine(env).cancel(state.id, item.attempt, item.reason);
      return;
    case "archive_log":
      return archiveLog(env, state.id, job.logs);
    case "answer":
      return writeAnswer(job);
    case "notify": {
      if (!state.chatId) return "notify_no_chat"; // API jobs have nobody to tell
      const memo = job.memo<NotifyMemo>("notify") ?? {};
      job.setMemo("notify", await notifyJob(env, viewOf(state, job.logs), memo));
      return;
    }
  }
}
