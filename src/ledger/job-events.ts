// A job's transitions as they ride on its ledger row (jobs.events, migration 0012): the stored
// element, and the SQL that appends events to the row or asks whether it holds one, each once.
import { type SQL, sql } from "drizzle-orm";
import { type JobEventJson, jobs } from "./schema.ts";

export interface JobEventInput {
  jobId: string;
  seq: number;
  fromStatus: string | null;
  toStatus: string;
  event: string;
  detail?: Record<string, unknown>;
  at: number;
}

/** The element stored in jobs.events for one transition. */
export function eventJson(e: Omit<JobEventInput, "jobId">): JobEventJson {
  return { seq: e.seq, from: e.fromStatus, to: e.toStatus, event: e.event, detail: e.detail ?? null, at: e.at };
}

/** Events one statement carries: D1 binds at most 100 parameters, a snapshot takes about 45, an event 1. */
export const EVENTS_PER_STATEMENT = 40;

/**
 * Whether a jobs.events text holds the event with this seq. A text search, not json_each: D1
 * bills every row json_each yields as a row read. Every element is written with seq and from as
 * its first keys (eventJson, migration 0012), and SQLite keeps key order, so an element of the
 * array begins `[{"seq":N,"from":` or `,{"seq":N,"from":`; inside a string those characters
 * would be escaped, and no detail holds objects keyed that way.
 */
export function heldSql(events: SQL, seq: number): SQL {
  const n = safeInt(seq);
  return sql
    .raw(`(instr(`)
    .append(events)
    .append(
      sql
        .raw(`, '[{"seq":${n},"from":') > 0 OR instr(`)
        .append(events)
        .append(sql.raw(`, ',{"seq":${n},"from":') > 0)`)),
    );
}

/**
 * `events` with those of `list` it does not hold yet appended, in order: a replayed event (one
 * whose seq the row already holds, read from the row as it was before this statement) appends
 * nothing. json_insert at an index the array already has changes nothing, which is how an event
 * already held is skipped (the array then has at least that element).
 */
export function appendEventsSql(list: JobEventJson[]): SQL {
  const fresh = uniqueEvents(list);
  if (fresh.length === 0) return sql`${jobs.events}`;
  const args = fresh.map(
    (e) =>
      sql`CASE WHEN ${heldSql(sql`${jobs.events}`, e.seq)} THEN '$[0]' ELSE '$[#]' END, json(${JSON.stringify(e)})`,
  );
  return sql`json_insert(${jobs.events}, ${sql.join(args, sql`, `)})`;
}

/** Each seq once, in seq order: what a new row's events column starts as. */
export function uniqueEvents(list: JobEventJson[]): JobEventJson[] {
  const seen = new Set<number>();
  return list.filter((e) => !seen.has(e.seq) && seen.add(e.seq)).sort((a, b) => a.seq - b.seq);
}

/** An integer to write into SQL text (seqs and counter amounts are ours, but never trust a cast). */
export function safeInt(n: number): number {
  if (!Number.isSafeInteger(n)) throw new Error(`not an integer: ${n}`);
  return n;
}
