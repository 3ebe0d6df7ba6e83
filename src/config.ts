// Typed configuration read from the Worker's env ([vars] and secrets), with defaults and bounds.
import { z } from "zod";
import { setLogLevel } from "./lib/log.ts";

const Bool = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === "" ? undefined : /^(1|true|yes|on)$/i.test(v.trim())));
const Seconds = (fallback: number, max = 7 * 24 * 3600) =>
  z.coerce.number().int().min(1).max(max).catch(fallback).default(fallback);
const IdList = z
  .string()
  .optional()
  .transform((v) =>
    (v ?? "")
      .split(/[\s,]+/)
      .map((x) => x.trim())
      .filter((x) => /^-?\d+$/.test(x)),
  );

const ConfigSchema = z.object({
  apiToken: z.string().optional().default(""),
  telegramBotToken: z.string().optional().default(""),
  telegramWebhookSecret: z.string().optional().default(""),
  telegramAllowedUserIds: IdList,
  telegramAdminUserIds: IdList,
  telegramApiRoot: z.string().optional().default("https://api.telegram.org"),
  telegramBotUsername: z
    .string()
    .regex(/^[A-Za-z0-9_]{3,64}$/)
    .catch("skynet_bot")
    .default("skynet_bot"),
  anthropicApiKey: z.string().optional().default(""),
  anthropicBaseUrl: z.string().optional().default(""),
  anthropicModel: z.string().min(1).optional().default("claude-sonnet-5-5"),
  autoApproveReadOnly: Bool.transform((v) => v ?? true),
  approvalTimeoutS: Seconds(300),
  heartbeatTimeoutS: Seconds(180),
  jobTimeoutS: Seconds(3600),
  leaseS: Seconds(120),
  acceptTimeoutS: Seconds(30),
  reconnectGraceS: Seconds(30),
  /** How long a job whose started WRITE/ADMIN step's agent is unreachable waits for its result. */
  unreachableTimeoutS: Seconds(600),
  heartbeatIntervalS: Seconds(15),
  logRetentionDays: Seconds(30, 3650),
  /** Days a final job keeps its Durable Object storage (state, outbox, live log) after it ends. */
  jobStateRetentionDays: Seconds(7, 3650),
  /** Days of D1 history (a final job's events) kept; 0 is not allowed (the counters need the events' rows once). */
  historyRetentionDays: Seconds(365, 36500),
  logLevel: z.enum(["debug", "info", "warn", "error"]).catch("info").default("info"),
  maxDispatchAttempts: z.coerce.number().int().min(1).max(10).catch(3).default(3),
  taskRateLimitPerMinute: z.coerce.number().int().min(1).max(1000).catch(10).default(10),
});
export type Config = z.infer<typeof ConfigSchema>;

type EnvLike = Partial<Record<string, unknown>>;
const str = (env: EnvLike, key: string): string | undefined => {
  const v = env[key];
  return typeof v === "string" ? v : undefined;
};

/** Reads the configuration from env; bad values fall back to defaults rather than crash. */
export function loadConfig(env: Env): Config {
  const e = env as unknown as EnvLike;
  const config = ConfigSchema.parse({
    apiToken: str(e, "API_TOKEN"),
    telegramBotToken: str(e, "TELEGRAM_BOT_TOKEN"),
    telegramWebhookSecret: str(e, "TELEGRAM_WEBHOOK_SECRET"),
    telegramAllowedUserIds: str(e, "TELEGRAM_ALLOWED_USER_IDS"),
    telegramAdminUserIds: str(e, "TELEGRAM_ADMIN_USER_IDS"),
    telegramApiRoot: str(e, "TELEGRAM_API_ROOT") || undefined,
    telegramBotUsername: str(e, "TELEGRAM_BOT_USERNAME") || undefined,
    anthropicApiKey: str(e, "ANTHROPIC_API_KEY"),
    anthropicBaseUrl: str(e, "ANTHROPIC_BASE_URL"),
    anthropicModel: str(e, "ANTHROPIC_MODEL") || undefined,
    autoApproveReadOnly: str(e, "AUTO_APPROVE_READ_ONLY"),
    approvalTimeoutS: str(e, "APPROVAL_TIMEOUT_SECONDS"),
    heartbeatTimeoutS: str(e, "HEARTBEAT_TIMEOUT_SECONDS"),
    jobTimeoutS: str(e, "JOB_TIMEOUT_SECONDS"),
    leaseS: str(e, "LEASE_SECONDS"),
    acceptTimeoutS: str(e, "ACCEPT_TIMEOUT_SECONDS"),
    reconnectGraceS: str(e, "RECONNECT_GRACE_SECONDS"),
    unreachableTimeoutS: str(e, "AGENT_UNREACHABLE_SECONDS"),
    heartbeatIntervalS: str(e, "HEARTBEAT_INTERVAL_SECONDS"),
    logRetentionDays: str(e, "LOG_RETENTION_DAYS"),
    jobStateRetentionDays: str(e, "JOB_STATE_RETENTION_DAYS"),
    historyRetentionDays: str(e, "HISTORY_RETENTION_DAYS"),
    logLevel: str(e, "SKYNET_LOG_LEVEL")?.toLowerCase(),
    maxDispatchAttempts: str(e, "MAX_DISPATCH_ATTEMPTS"),
    taskRateLimitPerMinute: str(e, "TASK_RATE_LIMIT_PER_MINUTE"),
  });
  setLogLevel(config.logLevel);
  return config;
}
