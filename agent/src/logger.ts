// The agent's own log lines, for a terminal or a service manager (journald, launchd's log file):
// each one carries an ISO timestamp and a level, as text or as one JSON object per line. Every
// line passes the Redactor first, so the agent token never reaches a log, whatever is quoted.
import type { Redactor } from "./secrets.ts";

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ["text", "json"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  log(level: LogLevel, msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export interface LoggerOptions {
  format?: LogFormat;
  redactor?: Redactor;
  /** Where finished lines go (default: stderr, which journald and launchd capture). */
  write?: (line: string) => void;
  now?: () => Date;
}

/** Renders one log line (without the newline). Pure: the same inputs give the same line. */
export function formatLogLine(
  format: LogFormat,
  time: Date,
  level: LogLevel,
  msg: string,
  fields: LogFields = {},
  redact: (s: string) => string = (s) => s,
): string {
  const clean: Record<string, string | number | boolean | null> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v !== undefined) clean[k] = typeof v === "string" ? redact(v) : v;
  }
  if (format === "json") {
    const line: Record<string, unknown> = { time: time.toISOString(), level, msg: redact(msg) };
    if (Object.keys(clean).length > 0) line.fields = clean;
    return JSON.stringify(line);
  }
  // Text: one line per event even when a message holds newlines (a log reader splits on them).
  const extra = Object.entries(clean)
    .map(([k, v]) => ` ${k}=${typeof v === "string" && /[\s"=]/.test(v) ? JSON.stringify(v) : String(v)}`)
    .join("");
  return `${time.toISOString()} ${level.toUpperCase().padEnd(5)} ${redact(msg).replaceAll("\n", "\\n")}${extra}`;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const format = opts.format ?? "text";
  const write = opts.write ?? ((line: string) => void process.stderr.write(line));
  const now = opts.now ?? (() => new Date());
  const redact = opts.redactor ? (s: string) => opts.redactor?.text(s) ?? s : undefined;
  const log = (level: LogLevel, msg: string, fields?: LogFields) =>
    write(`${formatLogLine(format, now(), level, msg, fields, redact)}\n`);
  return {
    log,
    debug: (m, f) => log("debug", m, f),
    info: (m, f) => log("info", m, f),
    warn: (m, f) => log("warn", m, f),
    error: (m, f) => log("error", m, f),
  };
}
