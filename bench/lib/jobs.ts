// Waiting for jobs without loading the system being measured: one long-poll per job (the server
// answers when the job is final), and times taken from the ledger's own transition times.
import { randomBytes } from "node:crypto";
import type { ApiClient } from "../../test/helpers/node/api-client.ts";

export interface LedgerEvent {
  to: string;
  at: string;
  event: string;
}

const FINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

/** Waits until the job is final with GET /api/jobs/:id/wait (long-poll, re-issued until final). */
/** A job id for the gateway's /execute, in the shape the API takes (time-ordered, then random). */
export const benchJobId = (): string => `job_${Date.now().toString(36)}${randomBytes(6).toString("hex")}`;

export async function waitFinal(client: ApiClient, jobId: string, timeoutMs = 120_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await client.call<{ status: string }>(`/api/jobs/${jobId}/wait?timeoutS=30`);
    if (res.status !== 200) throw new Error(`wait ${jobId}: ${res.status} ${JSON.stringify(res.body)}`);
    if (FINAL.has(res.body.status)) return res.body.status;
  }
  throw new Error(`job ${jobId} not final after ${timeoutMs} ms`);
}

export async function ledgerEvents(client: ApiClient, jobId: string): Promise<LedgerEvent[]> {
  return (await client.call<{ events: LedgerEvent[] }>(`/api/jobs/${jobId}/events`)).body.events ?? [];
}

/** The ledger time (ms since the epoch) of the job's first move to `status`, once written. */
export async function reachedAt(client: ApiClient, jobId: string, status: string): Promise<number | null> {
  for (let i = 0; i < 50; i++) {
    const ev = (await ledgerEvents(client, jobId)).find((e) => e.to === status);
    if (ev) return Date.parse(ev.at);
    await new Promise((r) => setTimeout(r, 100));
  }
  return null;
}
