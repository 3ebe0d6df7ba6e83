// The registry's rows in memory, kept in step with its own writes: the registry is single-threaded
// and the table's only writer, so a row it wrote is the row on disk. Offered and running rows are
// all here (read once when the object starts; there are at most as many as the agents' slots);
// waiting rows only while recently touched, so a long queue is not held in memory.
import type { Row } from "./assignment-rows.ts";

/** Waiting rows kept (the ones just queued or just sent back): the rest are read when asked for. */
const WAITING_KEPT = 512;

export class RowCache {
  private readonly active = new Map<string, Row>();
  private readonly held = new Map<string, Set<string>>();
  private readonly waiting = new Map<string, Row>();

  constructor(active: Iterable<Row>) {
    for (const r of active) this.set(r);
  }

  get(jobId: string): Row | undefined {
    return this.active.get(jobId) ?? this.waiting.get(jobId);
  }

  /** The row as now written (replacing what was kept for the job). */
  set(r: Row): void {
    this.delete(r.job_id);
    if (r.state === "pending" || r.agent_id === null) {
      this.waiting.set(r.job_id, r);
      if (this.waiting.size > WAITING_KEPT) {
        const oldest = this.waiting.keys().next().value;
        if (oldest !== undefined) this.waiting.delete(oldest);
      }
      return;
    }
    this.active.set(r.job_id, r);
    let jobs = this.held.get(r.agent_id);
    if (!jobs) {
      jobs = new Set();
      this.held.set(r.agent_id, jobs);
    }
    jobs.add(r.job_id);
  }

  delete(jobId: string): void {
    this.waiting.delete(jobId);
    const r = this.active.get(jobId);
    if (!r) return;
    this.active.delete(jobId);
    const jobs = r.agent_id === null ? undefined : this.held.get(r.agent_id);
    jobs?.delete(jobId);
    if (r.agent_id !== null && jobs?.size === 0) this.held.delete(r.agent_id);
  }

  /** Jobs offered to or running on the agent. */
  count(agentId: string): number {
    return this.held.get(agentId)?.size ?? 0;
  }

  ofAgent(agentId: string): Row[] {
    return [...(this.held.get(agentId) ?? [])].flatMap((id) => this.active.get(id) ?? []);
  }

  /** Every outstanding offer (a few: one per free slot at most). */
  offers(): Row[] {
    return [...this.active.values()].filter((r) => r.state === "offered");
  }
}
