// The registry's writes to the ledger's workers table. D1 rows written are billed, so a job must
// not cost any: an agent's load (BUSY/ONLINE and its running count) is never written when a job
// starts or ends, only by a heartbeat, and at most once per LOAD_WRITE_GAP_MS (hello counts as a
// load write); a heartbeat that changes nothing writes at most once an interval. Online/offline
// and the agent's profile (hello) are written at once. Readers see the row's updated_at as the
// time its load figures are "as of"; live figures come from the registry (listAgents). What was
// last written is kept in memory (after hibernation the next heartbeat simply writes once).

import { setWorkerStatus, touchWorker, upsertWorker } from "../ledger/agent-store.ts";
import { getDb } from "../ledger/store.ts";
import { errorMessage, log } from "../lib/log.ts";
import type { AgentProfile } from "./matching.ts";

/** A heartbeat that changes nothing writes the ledger at most this often. */
export const HEARTBEAT_WRITE_INTERVAL_MS = 60_000;
/** An agent's load is written at most this often (its busiest minute costs two writes). */
export const LOAD_WRITE_GAP_MS = 30_000;

/** What the ledger last heard from an agent, and how many jobs the agent last said it runs. */
interface LedgerMark {
  /** Last write of any kind (the heartbeat's last_heartbeat_at). */
  at: number;
  /** Last write of the load (hello's included). */
  loadAt: number;
  /** The running count the row shows. */
  running: number;
  reported: number;
}

export class WorkerLedger {
  private readonly env: Env;
  /** Keep the last_heartbeat_at fresh well inside the Sentinel's heartbeat timeout. */
  private readonly interval: number;
  private readonly gap: number;
  private readonly now: () => number;
  readonly marks = new Map<string, LedgerMark>();

  constructor(env: Env, heartbeatTimeoutS: number, now: () => number = Date.now) {
    this.env = env;
    this.interval = Math.min(HEARTBEAT_WRITE_INTERVAL_MS, (heartbeatTimeoutS * 1000) / 3);
    this.gap = Math.min(LOAD_WRITE_GAP_MS, this.interval);
    this.now = now;
  }

  async hello(profile: AgentProfile, running: number): Promise<void> {
    const at = this.now();
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
      .then(() => this.marks.set(profile.agentId, { at, loadAt: at, running, reported: -1 }))
      .catch((err: unknown) =>
        log("warn", "ledger: worker upsert failed", { agentId: profile.agentId, error: errorMessage(err) }),
      );
  }

  /**
   * A heartbeat: writes a load that changed once the gap has passed, or refreshes the row once
   * the interval has. Returns true when the agent reports fewer jobs than last time (it has a
   * free slot again).
   */
  async heartbeat(agentId: string, load: number, reported: number): Promise<boolean> {
    const now = this.now();
    const mark = this.marks.get(agentId);
    const changed = mark?.running !== load;
    if (!mark || (changed && now - mark.loadAt >= this.gap) || now - mark.at >= this.interval) {
      await touchWorker(getDb(this.env.DB), agentId, now, load)
        .then(() =>
          this.marks.set(agentId, {
            at: now,
            loadAt: changed ? now : (mark?.loadAt ?? 0),
            running: load,
            reported: mark?.reported ?? -1,
          }),
        )
        .catch(() => undefined);
    }
    const freed = mark !== undefined && reported < mark.reported;
    const current = this.marks.get(agentId);
    if (current) current.reported = reported;
    return freed;
  }

  /**
   * A job started or ended on the agent: nothing is written now (a busy agent would cost a row
   * per job); the next heartbeat after the gap writes the load as it is then.
   */
  async load(_agentId: string, _running: number): Promise<void> {}

  async offline(agentId: string, write: boolean): Promise<void> {
    this.marks.delete(agentId);
    if (write) await setWorkerStatus(getDb(this.env.DB), agentId, "OFFLINE", { at: this.now() }).catch(() => undefined);
  }
}
