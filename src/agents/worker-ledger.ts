// The registry's writes to the ledger's workers table. A heartbeat that changes nothing (same
// running count) writes at most once a minute, so a chatty or flooding agent cannot turn its
// frames into D1 load; what was last written is kept in memory (after hibernation the next
// heartbeat simply writes once).

import { getDb, setWorkerStatus, touchWorker, upsertWorker } from "../ledger/store.ts";
import { errorMessage, log } from "../lib/log.ts";
import type { AgentProfile } from "./matching.ts";

/** A heartbeat that changes nothing writes the ledger at most this often. */
export const HEARTBEAT_WRITE_INTERVAL_MS = 60_000;

/** What the ledger last heard from an agent, and how many jobs the agent last said it runs. */
interface LedgerMark {
  at: number;
  running: number;
  reported: number;
}

export class WorkerLedger {
  private readonly env: Env;
  /** Keep the last_heartbeat_at fresh well inside the Sentinel's heartbeat timeout. */
  private readonly interval: number;
  readonly marks = new Map<string, LedgerMark>();

  constructor(env: Env, heartbeatTimeoutS: number) {
    this.env = env;
    this.interval = Math.min(HEARTBEAT_WRITE_INTERVAL_MS, (heartbeatTimeoutS * 1000) / 3);
  }

  async hello(profile: AgentProfile, running: number): Promise<void> {
    const at = Date.now();
    await upsertWorker(getDb(this.env.DB), {
      id: profile.agentId,
      name: profile.name,
      capabilities: profile.capabilities,
      workspaces: profile.workspaces,
      status: running > 0 ? "BUSY" : "ONLINE",
      running,
      maxConcurrency: profile.maxConcurrency,
      version: profile.version,
      at,
    })
      .then(() => this.marks.set(profile.agentId, { at, running, reported: -1 }))
      .catch((err: unknown) =>
        log("warn", "ledger: worker upsert failed", { agentId: profile.agentId, error: errorMessage(err) }),
      );
  }

  /**
   * A heartbeat: written only if the load changed or the interval passed. Returns true when the
   * agent reports fewer jobs than last time (it has a free slot again).
   */
  async heartbeat(agentId: string, load: number, reported: number): Promise<boolean> {
    const now = Date.now();
    const mark = this.marks.get(agentId);
    if (!mark || mark.running !== load || now - mark.at >= this.interval) {
      await touchWorker(getDb(this.env.DB), agentId, now, load)
        .then(() => this.marks.set(agentId, { at: now, running: load, reported: mark?.reported ?? -1 }))
        .catch(() => undefined);
    }
    const freed = mark !== undefined && reported < mark.reported;
    const current = this.marks.get(agentId);
    if (current) current.reported = reported;
    return freed;
  }

  /** ONLINE or BUSY from the jobs the agent holds. */
  async load(agentId: string, running: number): Promise<void> {
    const at = Date.now();
    await setWorkerStatus(getDb(this.env.DB), agentId, running > 0 ? "BUSY" : "ONLINE", { running, at })
      .then(() => {
        const mark = this.marks.get(agentId);
        this.marks.set(agentId, { at, running, reported: mark?.reported ?? -1 });
      })
      .catch((err: unknown) => log("warn", "ledger: worker status failed", { agentId, error: errorMessage(err) }));
  }

  async offline(agentId: string, write: boolean): Promise<void> {
    this.marks.delete(agentId);
    if (write) await setWorkerStatus(getDb(this.env.DB), agentId, "OFFLINE", { at: Date.now() }).catch(() => undefined);
  }
}
