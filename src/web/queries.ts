// Bounded ledger reads for the console: a page of jobs (status, intent search, per-user visibility,
// keyset cursor on the created_at index) and the last day of jobs for the overview charts.
import { z } from "zod";
import { JobStatusSchema } from "../../protocol/index.ts";
import type { Actor } from "../jobs/job-do.ts";

export const JobFilterSchema = z.object({
  status: z.union([JobStatusSchema, z.literal("")]).optional(),
  q: z.string().max(200).optional(),
  cursor: z
    .string()
    .regex(/^\d{1,16}:job_[0-9a-z]{10,40}$/)
    .optional()
    .or(z.literal("")),
});
export type JobFilter = z.infer<typeof JobFilterSchema>;

export interface JobListRow {
  id: string;
  projectId: string;
  status: string;
  risk: string | null;
  intent: string;
  createdAt: string;
  userId: string;
}

const PAGE = 25;

/** LIKE with the user's text taken literally (%, _ and \ escaped). */
const likePattern = (q: string) => `%${q.replace(/[\\%_]/g, (m) => `\\${m}`)}%`;

export async function listVisibleJobs(
  db: D1Database,
  actor: Actor,
  f: JobFilter,
): Promise<{ jobs: JobListRow[]; nextCursor: string | null }> {
  const where: string[] = [];
  const args: (string | number)[] = [];
  if (!actor.isAdmin) {
    where.push("user_id = ?");
    args.push(actor.id);
  }
  if (f.status) {
    where.push("status = ?");
    args.push(f.status);
  }
  if (f.q) {
    where.push("intent LIKE ? ESCAPE '\\'");
    args.push(likePattern(f.q));
  }
  if (f.cursor) {
    const [at, id] = f.cursor.split(":");
    where.push("(created_at < ? OR (created_at = ? AND id < ?))");
    args.push(Number(at), Number(at), String(id));
  }
  const sql = `SELECT id, project_id, status, risk, intent, created_at, user_id FROM jobs ${
    where.length ? `WHERE ${where.join(" AND ")}` : ""
  } ORDER BY created_at DESC, id DESC LIMIT ${PAGE + 1}`;
  const { results } = await db
    .prepare(sql)
    .bind(...args)
    .all<{
      id: string;
      project_id: string;
      status: string;
      risk: string | null;
      intent: string;
      created_at: number;
      user_id: string;
    }>();
  const page = results.slice(0, PAGE);
  const last = page.at(-1);
  return {
    jobs: page.map((r) => ({
      id: r.id,
      projectId: r.project_id,
      status: r.status,
      risk: r.risk,
      intent: r.intent,
      createdAt: new Date(r.created_at).toISOString(),
      userId: r.user_id,
    })),
    nextCursor: results.length > PAGE && last ? `${last.created_at}:${last.id}` : null,
  };
}
