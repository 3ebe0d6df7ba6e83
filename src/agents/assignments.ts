// The registry's bookkeeping in its own SQLite: jobs waiting for an agent, and jobs offered to
// or running on an agent. It survives hibernation; sockets' identities live in attachments.
import type { Capability, ExecutionSpec } from "../../protocol/index.ts";

export interface PendingJob {
  jobId: string;
  attempt: number;
  leaseToken: string;
  spec: ExecutionSpec;
  rejectedBy: string[];
}

export interface Assignment extends PendingJob {
  agentId: string;
  state: "offered" | "running";
  deadline: number;
}

type Row = {
  job_id: string;
  attempt: number;
  lease_token: string;
  spec_json: string;
  rejected_by: string;
  agent_id: string | null;
  state: string;
  deadline: number;
};

export class AssignmentBook {
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS jobs (
      job_id TEXT PRIMARY KEY, attempt INTEGER NOT NULL, lease_token TEXT NOT NULL, spec_json TEXT NOT NULL,
      rejected_by TEXT NOT NULL DEFAULT '[]', agent_id TEXT, state TEXT NOT NULL, deadline INTEGER NOT NULL DEFAULT 0,
      queued_at INTEGER NOT NULL)`);
  }

  private static toPending(r: Row): PendingJob {
    return {
      jobId: r.job_id,
      attempt: r.attempt,
      leaseToken: r.lease_token,
      spec: JSON.parse(r.spec_json) as ExecutionSpec,
      rejectedBy: JSON.parse(r.rejected_by) as string[],
    };
  }

  private static toAssignment(r: Row): Assignment {
    return {
      ...AssignmentBook.toPending(r),
      agentId: r.agent_id ?? "",
      state: r.state as Assignment["state"],
      deadline: r.deadline,
    };
  }

  /** Adds (or replaces with a newer attempt) a job waiting for an agent. */
  addPending(spec: ExecutionSpec, leaseToken: string): void {
    this.sql.exec(
      `INSERT INTO jobs (job_id, attempt, lease_token, spec_json, state, queued_at) VALUES (?, ?, ?, ?, 'pending', ?)
       ON CONFLICT(job_id) DO UPDATE SET attempt = excluded.attempt, lease_token = excluded.lease_token,
         spec_json = excluded.spec_json, rejected_by = '[]', agent_id = NULL, state = 'pending', deadline = 0
       WHERE excluded.attempt >= jobs.attempt`,
      spec.jobId,
      spec.attempt,
      leaseToken,
      JSON.stringify(spec),
      Date.now(),
    );
  }

  get(jobId: string): (Assignment | (PendingJob & { state: "pending" })) | undefined {
    const r = this.sql.exec<Row>("SELECT * FROM jobs WHERE job_id = ?", jobId).toArray()[0];
    if (!r) return undefined;
    return r.state === "pending"
      ? { ...AssignmentBook.toPending(r), state: "pending" }
      : AssignmentBook.toAssignment(r);
  }

  /**
   * Waiting jobs, oldest first. Rows are read up front (the caller updates the table while it
   * walks them) and parsed only when reached: the caller stops once no agent has a free slot.
   */
  *pending(): Generator<PendingJob> {
    const rows = this.sql.exec<Row>("SELECT * FROM jobs WHERE state = 'pending' ORDER BY queued_at").toArray();
    for (const row of rows) yield AssignmentBook.toPending(row);
  }

  /** Jobs held (offered or running) per agent, in one query. */
  loads(): Map<string, number> {
    const rows = this.sql
      .exec<{ agent_id: string; c: number }>(
        "SELECT agent_id, COUNT(*) AS c FROM jobs WHERE agent_id IS NOT NULL GROUP BY agent_id",
      )
      .toArray();
    return new Map(rows.map((r) => [r.agent_id, r.c]));
  }

  ofAgent(agentId: string): Assignment[] {
    return this.sql
      .exec<Row>("SELECT * FROM jobs WHERE agent_id = ?", agentId)
      .toArray()
      .map(AssignmentBook.toAssignment);
  }

  loadOf(agentId: string): number {
    return this.sql.exec<{ c: number }>("SELECT COUNT(*) AS c FROM jobs WHERE agent_id = ?", agentId).one().c;
  }

  offer(jobId: string, agentId: string, deadline: number): void {
    this.sql.exec(
      "UPDATE jobs SET agent_id = ?, state = 'offered', deadline = ? WHERE job_id = ?",
      agentId,
      deadline,
      jobId,
    );
  }

  markRunning(jobId: string, agentId: string, attempt: number, leaseToken: string, spec?: ExecutionSpec): void {
    const existing = this.get(jobId);
    if (!existing && spec) this.addPending(spec, leaseToken);
    this.sql.exec(
      "UPDATE jobs SET agent_id = ?, state = 'running', deadline = 0, attempt = ?, lease_token = ? WHERE job_id = ?",
      agentId,
      attempt,
      leaseToken,
      jobId,
    );
  }

  /** The agent turned the job down (or let the offer expire): back to pending, never to it again. */
  backToPending(jobId: string, agentId: string): void {
    const r = this.get(jobId);
    if (!r) return;
    const rejected = [...new Set([...r.rejectedBy, agentId])];
    this.sql.exec(
      "UPDATE jobs SET agent_id = NULL, state = 'pending', deadline = 0, rejected_by = ? WHERE job_id = ?",
      JSON.stringify(rejected),
      jobId,
    );
  }

  remove(jobId: string): void {
    this.sql.exec("DELETE FROM jobs WHERE job_id = ?", jobId);
  }

  expiredOffers(now: number): Assignment[] {
    return this.sql
      .exec<Row>("SELECT * FROM jobs WHERE state = 'offered' AND deadline <= ?", now)
      .toArray()
      .map(AssignmentBook.toAssignment);
  }

  nextDeadline(): number | null {
    return this.sql.exec<{ d: number | null }>("SELECT MIN(deadline) AS d FROM jobs WHERE state = 'offered'").one().d;
  }
}

export interface AgentProfile {
  agentId: string;
  name: string;
  capabilities: Capability[];
  workspaces: string[];
  maxConcurrency: number;
  allowShell: boolean;
  version: string;
}

/** The least busy connected agent that can run every step of the spec in its project. */
export function chooseAgent(
  spec: ExecutionSpec,
  required: Set<Capability>,
  agents: AgentProfile[],
  load: (agentId: string) => number,
  exclude: string[],
): AgentProfile | undefined {
  let best: AgentProfile | undefined;
  let bestLoad = Number.POSITIVE_INFINITY;
  for (const a of agents) {
    if (exclude.includes(a.agentId) || !a.workspaces.includes(spec.projectId)) continue;
    if ([...required].some((c) => !a.capabilities.includes(c))) continue;
    const l = load(a.agentId);
    if (l >= a.maxConcurrency) continue;
    const ratio = l / a.maxConcurrency;
    if (ratio < bestLoad) {
      best = a;
      bestLoad = ratio;
    }
  }
  return best;
}
