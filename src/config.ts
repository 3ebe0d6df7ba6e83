// Typed configuration read from the Worker's env ([vars] and secrets), with defaults and bounds.
// A set but invalid value (JOB_TIMEOUT_SECONDS=ten, AUTO_APPROVE_READ_ONLY=ture, a non-numeric
// user id) is an error that names the variable, never a silent fall back to the default: every
// request then answers 503 with that message and /health fails its `config` check.

import { z } from "zod";
import { err, ok, type Result } from "../protocol/result.ts";
import { deepFreeze } from "./lib/freeze.ts";
import { setLogLevel } from "./lib/log.ts";

const Bool = (fallback: boolean) =>
  z
    .string()
    .regex(/^(1|true|yes|on|0|false|no|off)$/i, "must be true or false (also 1/0, yes/no, on/off)")
    .transform((v) => /^(1|true|yes|on)$/i.test(v))
    .optional()
    .transform((v) => v ?? fallback);
const Int = (fallback: number, min: number, max: number) =>
  z.coerce
    .number({ error: "must be a whole number" })
    .int("must be a whole number")
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`)
    .optional()
    .transform((v) => v ?? fallback);
const Seconds = (fallback: number, max = 7 * 24 * 3600) => Int(fallback, 1, max);
const IdList = z
  .string()
  .optional()
  .transform((v) => (v ?? "").split(/[\s,]+/).filter((x) => x !== ""))
  .pipe(z.array(z.string().regex(/^-?\d+$/, "must be numeric Telegram user ids, separated by commas")));
const Url = (fallback: string) =>
  z
    .url({ protocol: /^https?$/, error: "must be an http(s) URL" })
    .optional()
    .transform((v) => v ?? fallback);
const Secret = z
  .string()
  .optional()
  .transform((v) => v ?? "");

/** Every variable the Worker reads, by its env name (so an error names the variable). */
const EnvVarsSchema = z.object({
  API_TOKEN: Secret,
  TELEGRAM_BOT_TOKEN: Secret,
  TELEGRAM_WEBHOOK_SECRET: Secret,
  TELEGRAM_ALLOWED_USER_IDS: IdList,
  TELEGRAM_ADMIN_USER_IDS: IdList,
  TELEGRAM_API_ROOT: Url("https://api.telegram.org"),
  TELEGRAM_BOT_USERNAME: z
    .string()
    .regex(/^[A-Za-z0-9_]{3,64}$/, "must be 3-64 letters, digits or _")
    .optional()
    .transform((v) => v ?? "skynet_bot"),
  ANTHROPIC_API_KEY: Secret,
  ANTHROPIC_BASE_URL: Url(""),
  ANTHROPIC_MODEL: z
    .string()
    .optional()
    .transform((v) => v ?? "claude-sonnet-5-5"),
  AUTO_APPROVE_READ_ONLY: Bool(true),
  APPROVAL_TIMEOUT_SECONDS: Seconds(300),
  HEARTBEAT_TIMEOUT_SECONDS: Seconds(180),
  JOB_TIMEOUT_SECONDS: Seconds(3600),
  LEASE_SECONDS: Seconds(120),
  ACCEPT_TIMEOUT_SECONDS: Seconds(30),
  RECONNECT_GRACE_SECONDS: Seconds(30),
  AGENT_UNREACHABLE_SECONDS: Seconds(600),
  HEARTBEAT_INTERVAL_SECONDS: Seconds(15),
  LOG_RETENTION_DAYS: Seconds(30, 3650),
  JOB_STATE_RETENTION_DAYS: Seconds(7, 3650),
  HISTORY_RETENTION_DAYS: Seconds(365, 36500),
  SKYNET_LOG_LEVEL: z
    .string()
    .transform((v) => v.toLowerCase())
    .pipe(z.enum(["debug", "info", "warn", "error"], { error: "must be debug, info, warn or error" }))
    .optional()
    .transform((v) => v ?? "info"),
  MAX_DISPATCH_ATTEMPTS: Int(3, 1, 10),
  TASK_RATE_LIMIT_PER_MINUTE: Int(10, 1, 1000),
});

const ConfigSchema = EnvVarsSchema.transform((v) => ({
  apiToken: v.API_TOKEN,
  telegramBotToken: v.TELEGRAM_BOT_TOKEN,
  telegramWebhookSecret: v.TELEGRAM_WEBHOOK_SECRET,
  telegramAllowedUserIds: v.TELEGRAM_ALLOWED_USER_IDS,
  telegramAdminUserIds: v.TELEGRAM_ADMIN_USER_IDS,
  telegramApiRoot: v.TELEGRAM_API_ROOT,
  telegramBotUsername: v.TELEGRAM_BOT_USERNAME,
  anthropicApiKey: v.ANTHROPIC_API_KEY,
  anthropicBaseUrl: v.ANTHROPIC_BASE_URL,
  anthropicModel: v.ANTHROPIC_MODEL,
  autoApproveReadOnly: v.AUTO_APPROVE_READ_ONLY,
  approvalTimeoutS: v.APPROVAL_TIMEOUT_SECONDS,
  heartbeatTimeoutS: v.HEARTBEAT_TIMEOUT_SECONDS,
  jobTimeoutS: v.JOB_TIMEOUT_SECONDS,
  leaseS: v.LEASE_SECONDS,
  acceptTimeoutS: v.ACCEPT_TIMEOUT_SECONDS,
  reconnectGraceS: v.RECONNECT_GRACE_SECONDS,
  /** How long a job whose started WRITE/ADMIN step's agent is unreachable waits for its result. */
  unreachableTimeoutS: v.AGENT_UNREACHABLE_SECONDS,
  heartbeatIntervalS: v.HEARTBEAT_INTERVAL_SECONDS,
  logRetentionDays: v.LOG_RETENTION_DAYS,
  /** Days a final job keeps its Durable Object storage (state, outbox, live log) after it ends. */
  jobStateRetentionDays: v.JOB_STATE_RETENTION_DAYS,
  /** Days of D1 history (a final job's events) kept; 0 is not allowed (the counters need the events' rows once). */
  historyRetentionDays: v.HISTORY_RETENTION_DAYS,
  logLevel: v.SKYNET_LOG_LEVEL,
  maxDispatchAttempts: v.MAX_DISPATCH_ATTEMPTS,
  taskRateLimitPerMinute: v.TASK_RATE_LIMIT_PER_MINUTE,
}));
export type Config = z.infer<typeof ConfigSchema>;

/** The deployment's configuration is invalid: the message names each bad variable (never its value). */
export class ConfigError extends Error {}

/**
 * The variables as the schema reads them: a blank value is unset (as `X=` in .dev.vars), a number
 * or boolean from [vars] is its text.
 */
function envVars(env: Env): Record<string, string | undefined> {
  const e = env as unknown as Partial<Record<string, unknown>>;
  const out: Record<string, string | undefined> = {};
  for (const key of Object.keys(EnvVarsSchema.shape)) {
    const v = e[key];
    const text = typeof v === "string" ? v.trim() : typeof v === "number" || typeof v === "boolean" ? String(v) : "";
    out[key] = text === "" ? undefined : text;
  }
  return out;
}

// Every request and Durable Object call reads the configuration; parsing it with zod each time
// cost several ms of CPU per job (bench/profile.ts). The result depends only on the variables'
// text, so it is kept per distinct set of values (a deployment has one; tests a few).
const parsedByVars = new Map<string, Result<Config>>();
const MAX_CACHED_CONFIGS = 32;
// A Worker isolate and each Durable Object instance see the same env object on every call, so
// its result is kept by identity too: no reading and stringifying of ~30 variables per call (a
// job's path loads the configuration dozens of times). An env is never changed after it is made.
const parsedByEnv = new WeakMap<object, Result<Config>>();

export function parseConfig(env: Env): Result<Config> {
  const known = parsedByEnv.get(env);
  if (known) return known;
  const result = parseVars(env);
  parsedByEnv.set(env, result);
  return result;
}

function parseVars(env: Env): Result<Config> {
  const vars = envVars(env);
  const key = JSON.stringify(vars);
  const cached = parsedByVars.get(key);
  if (cached) return cached;
  const parsed = ConfigSchema.safeParse(vars);
  let result: Result<Config>;
  // Frozen: one parsed object is shared by every caller with the same variables.
  if (parsed.success) result = ok(deepFreeze(parsed.data));
  else {
    const bad = parsed.error.issues.map((i) => `${i.path.join(".") || "env"} ${i.message}`);
    result = err(`invalid configuration: ${bad.join("; ")}`);
  }
  if (parsedByVars.size >= MAX_CACHED_CONFIGS) parsedByVars.clear();
  parsedByVars.set(key, result);
  return result;
}

/** The configuration, or a ConfigError naming the bad variables (answered as a 503). */
export function loadConfig(env: Env): Config {
  const config = parseConfig(env);
  if (!config.ok) throw new ConfigError(config.error);
  setLogLevel(config.value.logLevel);
  return config.value;
}
