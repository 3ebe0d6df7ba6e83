// The ledger's tables (D1, drizzle-orm). The JobDO is the source of truth for a job; these rows
// are its durable, queryable record. Times are epoch milliseconds.
import { sql } from "drizzle-orm";
import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

export const jobs = sqliteTable(
  "jobs",
  {
    id: text("id").primaryKey(),
    projectId: text("project_id").notNull(),
    userId: text("user_id").notNull(),
    chatId: text("chat_id"),
    messageId: integer("message_id"),
    intent: text("intent").notNull(),
    status: text("status").notNull(),
    risk: text("risk"),
    attempt: integer("attempt").notNull().default(0),
    planJson: text("plan_json"),
    specJson: text("spec_json"),
    resultJson: text("result_json"),
    error: text("error"),
    agentId: text("agent_id"),
    /** The short answer written when the job ended (null before, or when nothing ran). */
    answer: text("answer"),
    /** The job's model calls and their tokens (planning and the answer); cached = read from the prompt cache. */
    modelCalls: integer("model_calls").notNull().default(0),
    tokensInput: integer("tokens_input").notNull().default(0),
    tokensCached: integer("tokens_cached").notNull().default(0),
    tokensCacheWrite: integer("tokens_cache_write").notNull().default(0),
    tokensOutput: integer("tokens_output").notNull().default(0),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    /**
     * The job's transitions (migration 0012), a JSON array of JobEventJson ordered by seq,
     * appended by the snapshot's own upsert: no row per event.
     */
    events: text("events").notNull().default("[]"),
    /**
     * The job's final log when it was at most LEDGER_LOG_MAX_BYTES (migration 0015; larger ones
     * are in R2). Null: not archived here. Read only by the log download: the list queries and
     * getJob select around it.
     */
    log: text("log"),
  },
  // A WITHOUT ROWID table keyed by id (migration 0014; drizzle has no way to say so, the
  // migration does): the row is its id's b-tree entry, no separate id index. Each index costs an
  // entry per insert (and per change of its columns): measured, a job's insert writes 4 rows (the
  // row and these three), a status change 2. Each is read by a query that
  // would otherwise scan (EXPLAIN QUERY PLAN, migration 0012's review): created — the first page
  // of GET /api/jobs and the overview's last 24 h (without it: SCAN jobs + TEMP B-TREE); status —
  // the Sentinel's and the agents page's active jobs, status-filtered pages; user — a person's
  // own jobs (/jobs in Telegram, the console for non-admins).
  (t) => [
    index("jobs_status_created_idx").on(t.status, t.createdAt, t.id),
    index("jobs_user_created_idx").on(t.userId, t.createdAt),
    index("jobs_created_idx").on(t.createdAt, t.id),
    // Partial (migration 0011): API jobs have no chat, and only the bot's chat_id = ? lookup reads it.
    index("jobs_chat_message_idx").on(t.chatId, t.messageId).where(sql`${t.chatId} IS NOT NULL`),
  ],
);

/**
 * A Telegram follow-up's parent: the job whose message was replied to (migration 0007). Token
 * totals per day live in `counters` as tokens_day:<utc day>:<input|cached|output>, kept by triggers.
 */
export const jobThreads = sqliteTable(
  "job_threads",
  {
    jobId: text("job_id").primaryKey(),
    parentJobId: text("parent_job_id").notNull(),
    replyToMessageId: integer("reply_to_message_id"),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("job_threads_parent_idx").on(t.parentJobId)],
);

/** One transition as stored in jobs.events (migration 0012; the job_events table before it). */
export interface JobEventJson {
  seq: number;
  from: string | null;
  to: string;
  event: string;
  detail: Record<string, unknown> | null;
  at: number;
}

/** A transition as the ledger's readers see it (the job_events row's shape, which they were written for). */
export interface JobEventRow {
  jobId: string;
  seq: number;
  fromStatus: string | null;
  toStatus: string;
  event: string;
  /** JSON text, as the column held it. */
  detail: string | null;
  at: number;
}

export const workers = sqliteTable(
  "workers",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    capabilities: text("capabilities").notNull(),
    workspaces: text("workspaces").notNull(),
    status: text("status").notNull(),
    running: integer("running").notNull().default(0),
    maxConcurrency: integer("max_concurrency").notNull().default(1),
    version: text("version"),
    lastHeartbeatAt: integer("last_heartbeat_at").notNull(),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  // No index (migration 0013): a row per agent ever paired, read whole; an index on the heartbeat
  // time would cost a second row at every heartbeat write.
);

export const agentTokens = sqliteTable(
  "agent_tokens",
  {
    id: text("id").primaryKey(),
    agentId: text("agent_id").notNull(),
    name: text("name").notNull(),
    codeHash: text("code_hash"),
    codeExpiresAt: integer("code_expires_at"),
    tokenHash: text("token_hash"),
    createdBy: text("created_by").notNull(),
    createdAt: integer("created_at").notNull(),
    pairedAt: integer("paired_at"),
    lastUsedAt: integer("last_used_at"),
    revokedAt: integer("revoked_at"),
  },
  (t) => [
    uniqueIndex("agent_tokens_code_idx").on(t.codeHash),
    uniqueIndex("agent_tokens_token_idx").on(t.tokenHash),
    index("agent_tokens_agent_idx").on(t.agentId),
  ],
);

export const auditLog = sqliteTable(
  "audit_log",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    actor: text("actor").notNull(),
    action: text("action").notNull(),
    jobId: text("job_id"),
    detail: text("detail"),
    at: integer("at").notNull(),
  },
  (t) => [index("audit_log_job_idx").on(t.jobId), index("audit_log_at_idx").on(t.at)],
);

/** The coding agent's tool calls put to the requester (migrations/0006_coder_permissions.sql). */
export const permissionRequests = sqliteTable(
  "permission_requests",
  {
    id: text("id").primaryKey(),
    jobId: text("job_id").notNull(),
    attempt: integer("attempt").notNull(),
    stepId: text("step_id").notNull(),
    agentId: text("agent_id").notNull(),
    userId: text("user_id").notNull(),
    chatId: text("chat_id"),
    tool: text("tool").notNull(),
    kind: text("kind").notNull(),
    target: text("target").notNull(),
    preview: text("preview"),
    /** pending, allowed, denied, expired */
    status: text("status").notNull(),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
    decidedAt: integer("decided_at"),
    decidedBy: text("decided_by"),
    /** The Telegram message that asked (0008_permission_message.sql), edited when the request ends. */
    messageId: integer("message_id"),
  },
  (t) => [
    index("permission_requests_job_idx").on(t.jobId),
    index("permission_requests_user_status_idx").on(t.userId, t.status),
    index("permission_requests_status_expires_idx").on(t.status, t.expiresAt),
  ],
);
export type PermissionRequestRow = typeof permissionRequests.$inferSelect;

export type JobRow = typeof jobs.$inferSelect;
export type NewJobRow = typeof jobs.$inferInsert;
export type WorkerRow = typeof workers.$inferSelect;
export type AgentTokenRow = typeof agentTokens.$inferSelect;
export type AuditRow = typeof auditLog.$inferSelect;

/** Monotonic counters for /metrics (queue retries, dead letters, …). */
export const counters = sqliteTable("counters", {
  name: text("name").primaryKey(),
  value: integer("value").notNull().default(0),
});

/**
 * The counters a job's transitions move (jobs_status:<S>, events:requeue, hist:<h>:le:<b>,
 * hist:<h>:sum_ms) as one JSON object in one row (id 1, migration 0012): a ledger commit updates
 * it with one statement, one row written, however many counters its events move. Since migration
 * 0014 it holds only what grows with history (final statuses, histograms, re-dispatches; active
 * statuses are counted from the status index) and the model call and token totals
 * (model:calls, model:tokens:<kind>), kept by triggers on jobs.
 */
export const jobMetrics = sqliteTable("job_metrics", {
  id: integer("id").primaryKey(),
  data: text("data").notNull().default("{}"),
});

/** Provider health checks, one row per check (the Sentinel keeps the recent ones). */
export const providerChecks = sqliteTable(
  "provider_checks",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    provider: text("provider").notNull(),
    ok: integer("ok", { mode: "boolean" }).notNull(),
    latencyMs: integer("latency_ms").notNull(),
    agentsOnline: integer("agents_online").notNull().default(0),
    detail: text("detail"),
    at: integer("at").notNull(),
  },
  (t) => [index("provider_checks_provider_at_idx").on(t.provider, t.at)],
);

/** Open alerts, so an outage sends one alert (with a cooldown for reminders) and one recovery. */
export const alerts = sqliteTable("alerts", {
  key: text("key").primaryKey(),
  active: integer("active", { mode: "boolean" }).notNull(),
  message: text("message").notNull(),
  openedAt: integer("opened_at").notNull(),
  lastSentAt: integer("last_sent_at").notNull(),
  resolvedAt: integer("resolved_at"),
});

/**
 * Idempotency keys of job-creating requests (POST /api/tasks, POST /execute), per caller: a
 * repeated key with the same request returns the first job; with another request it is refused.
 */
export const idempotencyKeys = sqliteTable(
  "idempotency_keys",
  {
    scope: text("scope").notNull(),
    key: text("key").notNull(),
    requestHash: text("request_hash").notNull(),
    jobId: text("job_id").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [
    uniqueIndex("idempotency_keys_scope_key_idx").on(t.scope, t.key),
    index("idempotency_keys_created_idx").on(t.createdAt),
  ],
);
