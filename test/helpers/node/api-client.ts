// A small typed client for the JSON API, used by end-to-end tests and the benchmark.
import type { JobView } from "../../../protocol/index.ts";
import { waitFor } from "./wait.ts";

export class ApiClient {
  readonly base: string;
  private readonly token: string;
  constructor(base: string, token: string) {
    this.base = base;
    this.token = token;
  }

  async call<T = unknown>(
    path: string,
    init: { method?: string; json?: unknown } = {},
  ): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.base}${path}`, {
      method: init.method ?? (init.json === undefined ? "GET" : "POST"),
      headers: { Authorization: `Bearer ${this.token}`, "Content-Type": "application/json" },
      body: init.json === undefined ? undefined : JSON.stringify(init.json),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
  }

  async submit(intent: string, projectId = "default"): Promise<string> {
    const res = await this.call<{ jobId: string }>("/api/tasks", { json: { intent, projectId } });
    if (res.status !== 202) throw new Error(`submit failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.jobId;
  }

  async job(jobId: string): Promise<JobView> {
    const res = await this.call<JobView>(`/api/jobs/${jobId}`);
    if (res.status !== 200) throw new Error(`job ${jobId}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  /** The ids of the newest jobs (up to 100). */
  async jobIds(): Promise<string[]> {
    return (await this.call<{ jobs: { id: string }[] }>("/api/jobs?limit=100")).body.jobs.map((j) => j.id);
  }

  /** Waits for a job that is not in `before`: the one a message or request just created. */
  async newJob(before: Set<string>, what = "the new job"): Promise<string> {
    return waitFor(async () => (await this.jobIds()).find((id) => !before.has(id)), { what });
  }

  async waitStatus(jobId: string, statuses: string[], timeoutMs = 60_000): Promise<JobView> {
    return waitFor(
      async () => {
        const job = await this.job(jobId);
        return statuses.includes(job.status) ? job : false;
      },
      { timeoutMs, intervalMs: 100, what: `job ${jobId} to reach ${statuses.join("|")}` },
    );
  }

  async waitFinished(jobId: string, timeoutMs = 60_000): Promise<JobView> {
    return this.waitStatus(jobId, ["SUCCEEDED", "FAILED", "CANCELLED"], timeoutMs);
  }

  /** Pairs a new agent through the real endpoints. */
  async pair(name: string): Promise<{ agentId: string; token: string }> {
    const code = await this.call<{ code: string }>("/api/agents/pairing-codes", { json: { name } });
    const res = await fetch(`${this.base}/agent/pair`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: code.body.code, name }),
    });
    if (res.status !== 201) throw new Error(`pairing failed: ${res.status} ${await res.text()}`);
    return (await res.json()) as { agentId: string; token: string };
  }

  /** Waits (30 s: a fresh agent process starts slowly on a busy machine) until `agentId` is connected. */
  async waitOnline(agentId: string, what: string): Promise<void> {
    await waitFor(
      async () => {
        const res = await this.call<{ online: { agentId: string }[] }>("/api/agents");
        return res.body.online.some((a) => a.agentId === agentId);
      },
      { timeoutMs: 30_000, what },
    );
  }

  async agentsOnline(): Promise<number> {
    const res = await fetch(`${this.base}/health`);
    return ((await res.json()) as { agentsOnline: number }).agentsOnline;
  }
}
