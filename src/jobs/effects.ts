// Performs one outbox item for a JobDO. Each effect is idempotent, so a retry after a partial
// failure is harmless (ledger upserts, events keyed by seq, sends deduplicated by the JobDO).
import { writeAnswer } from "../answers/index.ts";
import { getEngine } from "../execution/engine.ts";
import { summedCountersQuery } from "../ledger/metric-counters.ts";
import {
  appendAuditQuery,
  appendJobEventsQuery,
  type Db,
  EVENTS_PER_STATEMENT,
  getDb,
  upsertJobQuery,
} from "../ledger/store.ts";
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
  | NonNullable<ReturnType<typeof summedCountersQuery>>;

type EventItem = Extract<OutboxItem, { kind: "event" }>;

/**
 * Events as multi-row inserts, each followed by the counters its rows move, summed (one upsert
 * per counter, not per event); the counters count only rows that insert added (a retry adds
 * nothing twice; see summedCountersQuery).
 */
export function eventQueries(db: Db, jobId: string, events: EventItem[]): LedgerQuery[] {
  const out: LedgerQuery[] = [];
  for (let i = 0; i < events.length; i += EVENTS_PER_STATEMENT) {
    const chunk = events.slice(i, i + EVENTS_PER_STATEMENT);
    out.push(
      appendJobEventsQuery(
        db,
        chunk.map((e) => ({
          jobId,
          seq: e.seq,
          fromStatus: e.fromStatus,
          toStatus: e.toStatus,
          event: e.event,
          detail: e.detail ?? undefined,
          at: e.at,
        })),
      ),
    );
    const counters = summedCountersQuery(db, chunk);
    if (counters) out.push(counters);
  }
  return out;
}

/**
 * The D1 statement for a ledger item, so consecutive ones go to D1 as one batch (one round
 * trip, one transaction); null when there is nothing to write. `done` runs after the write.
 */
export function ledgerStatement(
  job: Pick<JobContext, "memo" | "setMemo">,
  db: Db,
  state: JobState,
  item: OutboxItem,
): { queries: LedgerQuery[]; done?: () => void } | null {
  switch (item.kind) {
    case "ledger": {
      // Step events change nothing the ledger row holds: skip snapshots identical but for the time.
      const row = toLedgerRow(state);
      const key = ledgerContent(state);
      const written = job.memo<string>("ledger_written");
      if (written === key) return null;
      // What this object last wrote (the ledger row has no other writer) spares unchanged indexes.
      const before = written ? (JSON.parse(written) as ReturnType<typeof toLedgerRow>) : null;
      return { queries: [upsertJobQuery(db, row, before)], done: () => job.setMemo("ledger_written", key) };
    }
    case "event":
      return { queries: eventQueries(db, state.id, [item]) };
    case "audit":
      return {
        queries: [
          appendAuditQuery(db, {
            actor: item.actor,
            action: item.action,
            jobId: state.id,
            detail: item.detail,
            at: item.at,
          }),
        ],
      };
    default:
      return null;
  }
}

/** Performs the item; returns what it did, for the job's operation counters. */
export async function runOutboxItem(job: JobContext, state: JobState, item: OutboxItem): Promise<string | undefined> {
  const env = job.env;
  switch (item.kind) {
    case "ledger":
    case "event":
    case "audit": {
      const db = getDb(env.DB);
      const statement = ledgerStatement(job, db, state, item);
      if (!statement) return `${item.kind}_unchanged`;
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
      await archiveLog(env.ARCHIVE, state.id, job.logs);
      return;
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
