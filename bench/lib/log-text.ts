// Log-like text for the log streaming part: lines as a service writes them (time, level, component,
// message, ids, timings, paths), from a seeded generator, so the same bytes every run. Deflate
// (the agent's socket compression) takes it to ≈ 0.3 of its size, as real logs go; a stream of one
// repeated byte shrinks to nothing and costs it almost no work, which would flatter the figure.

import { rng } from "./rng.ts";

const LEVELS = ["INFO ", "INFO ", "INFO ", "DEBUG", "WARN ", "ERROR"];
const COMPONENTS = ["http", "worker", "db", "cache", "queue", "auth", "scheduler", "billing"];
const VERBS = ["handled", "processed", "retried", "enqueued", "flushed", "loaded", "validated", "rejected"];
const NOUNS = ["request", "batch", "session", "invoice", "upload", "report", "token", "message"];
const SEGMENTS = ["api", "v2", "items", "users", "orders", "files", "search", "export", "admin", "health"];
const STATUSES = [200, 200, 200, 201, 204, 304, 400, 404, 409, 500];

/** `bytes` of newline-terminated log lines (the last one cut to fit), the same for the same seed. */
export function logText(bytes: number, seed = 17): Buffer {
  const random = rng(seed);
  const next = (n: number) => Math.floor(random() * n);
  const pick = <T>(xs: readonly T[]): T => xs[next(xs.length)] as T;
  const out = Buffer.allocUnsafe(bytes);
  let at = Date.parse("2026-01-01T00:00:00Z");
  let n = 0;
  while (n < bytes) {
    at += next(50);
    const path = `/${pick(SEGMENTS)}/${pick(SEGMENTS)}/${next(100000)}`;
    const line =
      `${new Date(at).toISOString()} ${pick(LEVELS)} [${pick(COMPONENTS)}-${next(16)}] ` +
      `${pick(VERBS)} ${pick(NOUNS)} id=${next(2 ** 32)
        .toString(16)
        .padStart(8, "0")} ` +
      `in ${next(100000) / 100} ms status=${pick(STATUSES)} path=${path} bytes=${next(65536)}\n`;
    n += out.write(line, n, "utf8");
  }
  return out;
}
