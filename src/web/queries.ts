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

export interface JobThread {
  parentId: string | null;
  followUps: string[];
}

/** The job's parent (the job it follows up) and the follow-ups of it this person may see. */
export async function jobThread(db: D1Database, actor: Actor, jobId: string): Promise<JobThread> {
  const [parent, children] = await Promise.all([
    db.prepare("SELECT parent_job_id AS p FROM job_threads WHERE job_id = ?").bind(jobId).first<{ p: string }>(),
    db
      .prepare(
        `SELECT t.job_id AS id FROM job_threads t JOIN jobs j ON j.id = t.job_id
         WHERE t.parent_job_id = ? AND (? OR j.user_id = ?) ORDER BY t.created_at LIMIT 20`,
      )
      .bind(jobId, actor.isAdmin ? 1 : 0, actor.id)
      .all<{ id: string }>(),
  ]);
  return { parentId: parent?.p ?? null, followUps: children.results.map((r) => r.id) };
}
