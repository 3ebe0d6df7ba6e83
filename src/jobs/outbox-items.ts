// What the JobDO's outbox holds and its retry policy: the items (one per side effect), how
// they are seen by the drain, their lanes, the backoff and the parking threshold (outbox.ts
// stores them).
export type OutboxItem =
  | { kind: "ledger" }
  | {
      kind: "event";
      seq: number;
      fromStatus: string | null;
      toStatus: string;
      event: string;
      detail: Record<string, unknown> | null;
      at: number;
      /** The latency this event ends, for the /metrics histograms (absent: none, or an older item). */
      measure?: { histogram: "dispatch" | "duration"; ms: number } | null;
    }
  | { kind: "audit"; actor: string; action: string; detail: Record<string, unknown>; at: number }
  | { kind: "enqueue"; attempt: number }
  | { kind: "cancel_agent"; attempt: number; reason: string }
  | { kind: "archive_log" }
  /** The job's answer, written once it ended, before its final notification. */
  | { kind: "answer" }
  | { kind: "notify" };

/**
 * One item as the drain sees it. A commit writes one row holding all its items (a batch row);
 * an item that failed or was postponed lives in a row of its own, at the position it had in
 * its batch. `pos` orders items across rows: a batch row with id R holds positions R+1 … R+n.
 */
export interface OutboxRow {
  id: number;
  pos: number;
  item: OutboxItem;
  tries: number;
  batch: boolean;
}

export interface ParkedRow {
  id: number;
  kind: OutboxItem["kind"];
  tries: number;
  error: string | null;
  parkedAt: number;
  reported: boolean;
}

/** Failures after which an item is parked: about 13 minutes of retries at the backoff below. */
export const MAX_OUTBOX_TRIES = 10;
const BASE_DELAY_MS = 1000;
const MAX_DELAY_MS = 5 * 60_000;
/** How soon a parked item whose alert could not be sent is reported again. */
export const REPORT_RETRY_MS = 5 * 60_000;

/**
 * Items of one lane run in order, each after the one before it; lanes do not wait for each
 * other. A notification renders the current state, so it depends on nothing (no lane).
 */
export function laneOf(kind: OutboxItem["kind"]): string | null {
  switch (kind) {
    case "ledger":
    case "event":
    case "audit":
      return "ledger";
    case "enqueue":
    case "cancel_agent":
      return "agent"; // the old attempt's cancel goes before the new attempt's send
    case "archive_log":
      return "archive";
    case "notify":
    case "answer": // it commits its own notify and ledger row when written
      return null;
  }
}

/** Exponential backoff (1 s, 2 s, 4 s … capped at 5 min), each delay jittered to 50–100 %. */
export function backoffMs(tries: number, random: () => number = Math.random): number {
  const full = Math.min(BASE_DELAY_MS * 2 ** tries, MAX_DELAY_MS);
  return Math.round(full * (0.5 + 0.5 * random()));
}
