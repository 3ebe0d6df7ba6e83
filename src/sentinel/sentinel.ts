// The Sentinel (cron, every minute): marks silent agents OFFLINE (in the ledger and the registry)
// and hands their jobs to the lease-expiry path, re-checks every open job's timeouts (a missed
// alarm is re-armed), offers QUEUED jobs waiting over a minute again, expires coding-agent
// permission requests left pending past their deadline (their agent gone), and prunes D1 history
// in bounded steps (retention.ts). Archived logs and artifacts expire by the R2 bucket's
// lifecycle rules (scripts/r2-lifecycle.ts): no listing of the archive here.
import type { JobStatus } from "../../protocol/index.ts";
import { jobStub, registryStub } from "../agents/registry-stub.ts";
import { sweepExpiredPermissions } from "../coder/permissions.ts";
import { loadConfig } from "../config.ts";
import { markStaleWorkersOffline } from "../ledger/agent-store.ts";
import { getDb, listJobs } from "../ledger/store.ts";
import { errorMessage, log } from "../lib/log.ts";
import { checkProviders, type ProviderStats } from "./monitor.ts";
import { pruneHistory, type RetentionReport } from "./retention.ts";

export interface SentinelReport {
  agentsMarkedOffline: string[];
  jobsChecked: number;
  jobsChanged: { jobId: string; from: JobStatus; to: JobStatus }[];
  history: RetentionReport;
  providers: ProviderStats[];
  /** Coding-agent permission requests expired here: past their deadline with no word from the agent. */
  permissionsExpired: string[];
}

const OPEN: JobStatus[] = ["CREATED", "PLANNED", "QUEUED", "RUNNING"];

export async function runSentinel(env: Env, now = Date.now()): Promise<SentinelReport> {
  const config = loadConfig(env);
  const db = getDb(env.DB);
  const offline = await markStaleWorkersOffline(db, now - config.heartbeatTimeoutS * 1000);
  if (offline.length > 0) {
    log("warn", "sentinel: agents offline", { agents: offline });
    // One truth: the registry drops their (half-open or frozen) sockets too, so /api/agents agrees.
    await registryStub(env)
      .markOffline(offline)
      .catch((err: unknown) => log("error", "sentinel: registry markOffline failed", { error: errorMessage(err) }));
  }
  const report: SentinelReport = {
    agentsMarkedOffline: offline,
    jobsChecked: 0,
    jobsChanged: [],
    history: { eventsDeleted: 0, logsDeleted: 0, countersDeleted: 0 },
    providers: [],
    permissionsExpired: [],
  };
  for (const status of OPEN) {
    let cursor: string | undefined;
    do {
      const page = await listJobs(db, { status, limit: 100, cursor });
      for (const job of page.jobs) {
        report.jobsChecked += 1;
        try {
          const after = await jobStub(env, job.id).sentinelCheck(offline);
          if (after && after !== job.status)
            report.jobsChanged.push({ jobId: job.id, from: job.status as JobStatus, to: after });
        } catch (err) {
          log("error", "sentinel: job check failed", { jobId: job.id, error: errorMessage(err) });
        }
      }
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }
  try {
    report.permissionsExpired = await sweepExpiredPermissions(env, now);
  } catch (err) {
    log("error", "sentinel: permission sweep failed", { error: errorMessage(err) });
  }
  try {
    report.history = await pruneHistory(env.DB, now, {
      history: config.historyRetentionDays,
      logs: config.logRetentionDays,
    });
  } catch (err) {
    log("error", "sentinel: history retention failed", { error: errorMessage(err) });
  }
  try {
    report.providers = await checkProviders(env, now);
  } catch (err) {
    log("error", "sentinel: provider monitor failed", { error: errorMessage(err) });
  }
  return report;
}
