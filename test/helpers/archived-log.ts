// Where a job's final log was archived (archive-log.ts): on its ledger row, in R2, or neither.
import { env } from "cloudflare:test";
import { logKey } from "../../src/jobs/archive-log.ts";

export interface ArchivedLog {
  /** The row's log column (null: not there; "" is an empty log kept there). */
  ledger: string | null;
  /** The R2 object's bytes (null: no object). */
  r2: Uint8Array | null;
}

export async function archivedLog(jobId: string): Promise<ArchivedLog> {
  const row = await env.DB.prepare("SELECT log FROM jobs WHERE id = ?").bind(jobId).first<{ log: string | null }>();
  const obj = await env.ARCHIVE.get(logKey(jobId));
  return { ledger: row?.log ?? null, r2: obj ? new Uint8Array(await obj.arrayBuffer()) : null };
}

/** Which place holds it: "ledger", "r2", "both" (never expected) or "none". */
export async function archivedWhere(jobId: string): Promise<"ledger" | "r2" | "both" | "none"> {
  const { ledger, r2 } = await archivedLog(jobId);
  if (ledger !== null) return r2 ? "both" : "ledger";
  return r2 ? "r2" : "none";
}
