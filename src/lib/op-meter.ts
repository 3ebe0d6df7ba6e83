// Dev-only meter of the operations Cloudflare bills (issue #18 item 5): Worker invocations, Durable
// Object requests and storage rows, D1 rows, queue messages, R2 classes. Off unless the var
// SKYNET_OP_METER is "1"; then the entry points hand the code metered bindings and GET
// /__dev/op-meter returns the totals (POST resets them). When off, nothing is wrapped and the route
// does not exist. The totals live in the isolate: locally the Worker and its Durable Objects share
// one, so one read covers everything; on a real deployment they would not (it is not meant for one).
import { timingSafeEqual } from "./crypto.ts";

export const OP_METER_PATH = "/__dev/op-meter";

const counts = new Map<string, number>();
// SQL cursors count their rows as they are read: summed when the totals are read, also per
// statement ("sql:<statement>") so the rows can be traced to the code that spends them.
let cursors: [string, SqlStorageCursor<Record<string, SqlStorageValue>>][] = [];

/** A statement or key as a label: whitespace collapsed, long ids and numbers masked, bounded. */
const label = (text: unknown, max = 80): string =>
  String(text)
    .replace(/\s+/g, " ")
    .replace(/[A-Za-z0-9_-]{17,}|\d+/g, "*")
    .trim()
    .slice(0, max);

export function meterEnabled(env: object): boolean {
  return Reflect.get(env, "SKYNET_OP_METER") === "1";
}

function add(kind: string, n = 1): void {
  if (n) counts.set(kind, (counts.get(kind) ?? 0) + n);
}

export function opTotals(): Record<string, number> {
  for (const [sql, c] of cursors) {
    add("do.sql_rows_read", c.rowsRead);
    add("do.sql_rows_written", c.rowsWritten);
    add(`sql:${sql} [read]`, c.rowsRead);
    add(`sql:${sql} [written]`, c.rowsWritten);
  }
  cursors = [];
  return Object.fromEntries([...counts].sort(([a], [b]) => a.localeCompare(b)));
}

export function resetOpTotals(): void {
  opTotals();
  counts.clear();
}

type Fn = (...args: unknown[]) => unknown;
const isFn = (v: unknown): v is Fn => typeof v === "function";

/** `real`, counting `n(args)` of `kind` per call. */
function counting(kind: string, real: Fn, n: (args: unknown[]) => number = () => 1): Fn {
  return (...args) => {
    add(kind, n(args));
    return real(...args);
  };
}

/** A proxy whose methods run on the real object (native bindings refuse a proxy as `this`). */
function wrap<T extends object>(target: T, method: (name: string, real: Fn) => Fn | undefined): T {
  return new Proxy(target, {
    get(t, prop) {
      const v: unknown = Reflect.get(t, prop);
      if (!isFn(v)) return v;
      const real: Fn = (...args) => Reflect.apply(v, t, args);
      return (typeof prop === "string" && method(prop, real)) || real;
    },
  });
}

// ---- D1: rows come from each result's meta; first()/raw() carry none, so they run as all() ----
const realStatement = new WeakMap<object, { stmt: D1PreparedStatement; sql: string }>();
type D1Rows = { results: Record<string, unknown>[]; meta: { rows_read?: number; rows_written?: number } };

/** Also per statement ("d1:<statement>"), so the rows can be traced to the code that spends them. */
function countD1(r: D1Rows, sql: string): void {
  add("d1.queries");
  add("d1.rows_read", r.meta.rows_read ?? 0);
  add("d1.rows_written", r.meta.rows_written ?? 0);
  add(`d1:${sql} [read]`, r.meta.rows_read ?? 0);
  add(`d1:${sql} [written]`, r.meta.rows_written ?? 0);
}

function meterStatement(stmt: D1PreparedStatement, sql: string): D1PreparedStatement {
  const all = async () => {
    const r = (await stmt.all()) as unknown as D1Rows;
    countD1(r, sql);
    return r;
  };
  const proxy = wrap(stmt, (name) => {
    if (name === "bind") return (...args) => meterStatement(stmt.bind(...args), sql);
    if (name === "all" || name === "run") return all;
    if (name === "first")
      return async (col?: unknown) => {
        const row = (await all()).results[0];
        return row === undefined ? null : typeof col === "string" ? (row[col] ?? null) : row;
      };
    // As drizzle maps a batch's rows: columns in the order the row object holds them.
    if (name === "raw") return async () => (await all()).results.map((row) => Object.values(row));
    return undefined;
  });
  realStatement.set(proxy, { stmt, sql });
  return proxy;
}

function meterD1(db: D1Database): D1Database {
  return wrap(db, (name) => {
    if (name === "prepare") return (sql) => meterStatement(db.prepare(String(sql)), label(sql, 120));
    if (name === "batch")
      return async (stmts) => {
        const real = (stmts as D1PreparedStatement[]).map((s) => realStatement.get(s) ?? { stmt: s, sql: "?" });
        const results = await db.batch(real.map((r) => r.stmt));
        for (const [i, r] of results.entries()) countD1(r as unknown as D1Rows, real[i]?.sql ?? "?");
        return results;
      };
    return undefined;
  });
}

// ---- Durable Objects: every call through a stub is one request to the object ----
function meterStub<T extends object>(stub: T): T {
  return wrap(stub, (name, real) =>
    name === "then"
      ? undefined
      : (...args) => {
          add(name === "fetch" ? "do.fetch" : "do.rpc");
          return real(...args);
        },
  );
}

function meterNamespace(ns: DurableObjectNamespace): DurableObjectNamespace {
  return wrap(ns, (name, real) =>
    name === "get" || name === "getByName" ? (...args) => meterStub(real(...args) as object) : undefined,
  );
}

// ---- Queues, R2 ----
function meterQueue(q: Queue): Queue {
  return wrap(q, (name, real) => {
    if (name === "send") return counting("queue.writes", real);
    if (name === "sendBatch") return counting("queue.writes", real, (a) => [...(a[0] as unknown[])].length);
    return undefined;
  });
}

const R2_CLASS: Record<string, "r2.class_a" | "r2.class_b"> = {
  put: "r2.class_a",
  list: "r2.class_a",
  createMultipartUpload: "r2.class_a",
  resumeMultipartUpload: "r2.class_a",
  get: "r2.class_b",
  head: "r2.class_b",
};

function meterR2(bucket: R2Bucket): R2Bucket {
  return wrap(bucket, (name, real) => {
    const cls = R2_CLASS[name];
    return cls ? counting(cls, real) : undefined;
  });
}

/** The env with each binding metered, recognised by shape (no list of names to keep in step). */
export function meterEnv<E extends object>(env: E): E {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(env)) {
    if (v === null || typeof v !== "object") out[key] = v;
    else if ("prepare" in v && "batch" in v) out[key] = meterD1(v as D1Database);
    else if ("idFromName" in v && "get" in v) out[key] = meterNamespace(v as DurableObjectNamespace);
    else if ("sendBatch" in v && "send" in v) out[key] = meterQueue(v as Queue);
    else if ("createMultipartUpload" in v) out[key] = meterR2(v as R2Bucket);
    else out[key] = v;
  }
  return out as E;
}

// ---- Durable Object storage (SQLite-backed: billed by rows; the kv API is one row per key) ----
function meterStorage(storage: DurableObjectStorage): DurableObjectStorage {
  const sql = wrap(storage.sql, (name, real) =>
    name === "exec"
      ? (...args) => {
          const cursor = real(...args) as SqlStorageCursor<Record<string, SqlStorageValue>>;
          cursors.push([label(args[0]), cursor]);
          return cursor;
        }
      : undefined,
  );
  const keys = (first: unknown) =>
    Array.isArray(first) ? first.length : first !== null && typeof first === "object" ? Object.keys(first).length : 1;
  const kv = wrap(storage.kv, (name, real) => {
    if (name === "get" || name === "put" || name === "delete") {
      const counted = counting(name === "get" ? "do.kv_reads" : "do.kv_writes", real);
      return (...args) => {
        add(`kv:${name} ${label(args[0])}`);
        return counted(...args);
      };
    }
    return undefined;
  });
  const methods = wrap(storage, (name, real) => {
    if (name === "setAlarm" || name === "deleteAlarm") return counting("do.alarm_writes", real);
    if (name === "get") return counting("do.kv_reads", real, (a) => keys(a[0]));
    if (name === "put" || name === "delete") return counting("do.kv_writes", real, (a) => keys(a[0]));
    return undefined;
  });
  // sql and kv are properties, not methods.
  return new Proxy(storage, {
    get: (_t, prop) => (prop === "sql" ? sql : prop === "kv" ? kv : Reflect.get(methods, prop)),
  });
}

function meterState(ctx: DurableObjectState): DurableObjectState {
  const storage = meterStorage(ctx.storage);
  return new Proxy(ctx, {
    get(t, prop) {
      if (prop === "storage") return storage;
      const v: unknown = Reflect.get(t, prop);
      return isFn(v) ? (...args: unknown[]) => Reflect.apply(v, t, args) : v;
    },
  });
}

/**
 * Constructor hook of a Durable Object: when metering, its ctx and env become metered and its
 * alarms and incoming WebSocket messages (billed 20:1) are counted. Returns the (metered) ctx and
 * env for a constructor that goes on using its parameters.
 */
export function meterObject<E extends object>(obj: object, ctx: DurableObjectState, env: E): [DurableObjectState, E] {
  if (!meterEnabled(env)) return [ctx, env];
  const mctx = meterState(ctx);
  const menv = meterEnv(env);
  Object.defineProperty(obj, "ctx", { value: mctx, configurable: true });
  Object.defineProperty(obj, "env", { value: menv, configurable: true });
  for (const [name, kind] of [
    ["alarm", "do.alarm"],
    ["webSocketMessage", "do.ws_messages"],
  ] as const) {
    const real: unknown = Reflect.get(obj, name);
    if (isFn(real))
      Object.defineProperty(obj, name, { value: counting(kind, (...args) => Reflect.apply(real, obj, args)) });
  }
  return [mctx, menv];
}

/** The totals route: GET reads, POST resets; behind the API token like the rest of the API. */
function meterRoute(req: Request, env: object): Response {
  const expected = Reflect.get(env, "API_TOKEN");
  const token = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.get("Authorization") ?? "")?.[1];
  if (typeof expected !== "string" || !expected || !token || !timingSafeEqual(token, expected)) {
    return Response.json({ error: { code: "unauthorized", message: "bearer API token required" } }, { status: 401 });
  }
  if (req.method === "POST") resetOpTotals();
  return Response.json({ ops: opTotals() });
}

/** Queue deliveries: each is a read; each not retried is acked, which Queues bills as a delete. */
function meterBatch(batch: MessageBatch): MessageBatch {
  add("queue.reads", batch.messages.length);
  add("queue.deletes", batch.messages.length);
  const messages = batch.messages.map((m) =>
    wrap(m, (name, real) => (name === "retry" ? counting("queue.deletes", real, () => -1) : undefined)),
  );
  const methods = wrap(batch, (name, real) =>
    name === "retryAll" ? counting("queue.deletes", real, () => -batch.messages.length) : undefined,
  );
  return new Proxy(batch, { get: (_t, p) => (p === "messages" ? messages : Reflect.get(methods, p)) });
}

/** The Worker's entry points, metered when the var is set (and exactly the given ones otherwise). */
export function meterWorker<H extends object>(handler: H): H {
  const out: Record<string, Fn> = {};
  for (const name of ["fetch", "queue", "scheduled"] as const) {
    const real: unknown = Reflect.get(handler, name);
    if (!isFn(real)) continue;
    out[name] = (first, env, ...rest) => {
      if (env === null || typeof env !== "object" || !meterEnabled(env)) return real(first, env, ...rest);
      if (first instanceof Request && new URL(first.url).pathname === OP_METER_PATH) return meterRoute(first, env);
      add(`worker.${name}`);
      return real(name === "queue" ? meterBatch(first as MessageBatch) : first, meterEnv(env), ...rest);
    };
  }
  return Object.assign({}, handler, out);
}
