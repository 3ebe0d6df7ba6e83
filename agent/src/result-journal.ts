// The agent's on-disk journal of attempts: one small JSON file per (job, attempt), written
// (atomically: temp file, fsync, rename) when a step starts, when it finishes and when the attempt
// finishes, always before the matching frame is sent. A result kept only in memory dies with the
// agent process; this one survives it, is replayed after the next welcome, and is deleted once the
// server surely has it. A step that had started and never finished tells a restarted agent that
// the step died with the process: that is reported too, truthfully, instead of nothing.
import { createHash } from "node:crypto";
import { chmod, mkdir, open, readdir, readFile, rename, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import {
  AgentToServerSchema,
  type ExecutionResult,
  ExecutionSpecSchema,
  type FencedAgentMessage,
  JobIdSchema,
  StepIdSchema,
  type StepResult,
} from "../../protocol/index.ts";

/** More files than this (results the server never confirmed) and the oldest are dropped. */
export const MAX_JOURNAL_FILES = 1000;
const FILE_NAME = /^(job_[0-9a-z]{10,40})\.([1-9][0-9]{0,5})\.json$/;
const MAX_FILE_BYTES = 1024 * 1024;

const RecordSchema = z.strictObject({
  v: z.literal(1),
  /** Which agent identity (server + token) wrote it: another's file is never replayed. */
  agent: z.string().regex(/^[0-9a-f]{16}$/),
  jobId: JobIdSchema,
  attempt: z.number().int().min(1),
  leaseToken: z.string().min(16).max(128),
  spec: ExecutionSpecSchema,
  /** Every non-log frame produced so far, in order (job_finished last once finished). */
  frames: z.array(AgentToServerSchema).max(200),
  /** The step announced (step_started sent) but not yet spawned when this was written, if any
   * (only a step that waits for the server's confirmation is journaled so)… */
  starting: StepIdSchema.nullable(),
  /** …and the step spawned (or about to be, nothing else to wait for) and not finished, if any. */
  running: StepIdSchema.nullable(),
  finished: z.boolean(),
  /** When it was last written (ms since the epoch). */
  at: z.number().int().min(0),
});
export type JournalRecord = Omit<z.infer<typeof RecordSchema>, "frames"> & { frames: FencedAgentMessage[] };

const isFenced = (f: z.infer<typeof AgentToServerSchema>): f is FencedAgentMessage =>
  f.type !== "hello" && f.type !== "heartbeat" && f.type !== "resume" && f.type !== "draining";

/** The identity a journal belongs to: a hash of the server URL and the agent token (never the token). */
export function agentKey(serverUrl: string, token: string): string {
  return createHash("sha256").update(`${serverUrl}\n${token}`).digest("hex").slice(0, 16);
}

export const diedReason = (stepId: string): string =>
  `the agent process died while step ${stepId} ran; the step was killed with it, its effects may be partial`;
export const diedBeforeReason = (stepId: string): string =>
  `the agent process died before step ${stepId} started; the step did not run`;

export class ResultJournal {
  readonly dir: string;
  private readonly key: string;
  private readonly say: (line: string, level?: "info" | "warn") => void;
  private readonly maxFiles: number;
  /** Files on disk (by name) and when each was written: the cap is kept without listing the dir. */
  private readonly index = new Map<string, number>();
  /** One chain of writes per file, so a late write never lands after a newer one or a delete. */
  private readonly chains = new Map<string, Promise<void>>();
  private ready: Promise<void> | null = null;
  private tmp = 0;

  constructor(stateDir: string, key: string, say: ResultJournal["say"], maxFiles = MAX_JOURNAL_FILES) {
    this.dir = join(stateDir, key);
    this.key = key;
    this.say = say;
    this.maxFiles = maxFiles;
  }

  private fileOf(jobId: string, attempt: number): string {
    return `${jobId}.${attempt}.json`;
  }

  private ensureDir(): Promise<void> {
    this.ready ??= mkdir(this.dir, { recursive: true, mode: 0o700 }).then(() => chmod(this.dir, 0o700));
    return this.ready;
  }

  private queue(name: string, op: () => Promise<void>): Promise<void> {
    const next = (this.chains.get(name) ?? Promise.resolve()).then(op, op);
    const tail = next.catch(() => undefined);
    this.chains.set(name, tail);
    void tail.then(() => {
      if (this.chains.get(name) === tail) this.chains.delete(name);
    });
    return next;
  }

  /** Writes (or rewrites) the record of one attempt. A failure is logged: the job runs on.
   * `whileSyncing` runs once the fsync is issued, overlapping it (not called if the write fails
   * before; an exception from it is the caller's to see again, not the journal's). */
  async save(rec: Omit<JournalRecord, "v" | "agent" | "at">, whileSyncing?: () => void): Promise<void> {
    const name = this.fileOf(rec.jobId, rec.attempt);
    const body = JSON.stringify({
      v: 1,
      agent: this.key,
      ...rec,
      frames: rec.frames.filter((f) => f.type !== "log"),
      at: Date.now(),
    });
    await this.queue(name, async () => {
      await this.ensureDir();
      if (!this.index.has(name)) await this.makeRoom();
      this.tmp += 1;
      const tmp = join(this.dir, `.${name}.${process.pid}.${this.tmp}.tmp`);
      const fh = await open(tmp, "w", 0o600);
      try {
        await fh.writeFile(body);
        const synced = fh.sync();
        try {
          whileSyncing?.();
        } catch {
          // The caller finds its work not done and does it again, where the failure is its own.
        }
        await synced;
      } finally {
        await fh.close();
      }
      await rename(tmp, join(this.dir, name));
      this.index.set(name, Date.now());
    }).catch((err: unknown) => {
      this.say(`could not journal job ${rec.jobId} attempt ${rec.attempt}: ${(err as Error).message}`, "warn");
    });
  }

  /** Deletes an attempt's record (its result surely arrived, or no longer matters). */
  async remove(jobId: string, attempt: number): Promise<void> {
    const name = this.fileOf(jobId, attempt);
    await this.queue(name, async () => {
      this.index.delete(name);
      await unlink(join(this.dir, name)).catch(() => undefined);
    });
  }

  private async makeRoom(): Promise<void> {
    while (this.index.size >= this.maxFiles) {
      const [oldest] = [...this.index.entries()].sort((a, b) => a[1] - b[1]);
      if (!oldest) return;
      this.index.delete(oldest[0]);
      await unlink(join(this.dir, oldest[0])).catch(() => undefined);
      this.say(`journal full (${this.maxFiles} files): dropped the oldest, ${oldest[0]}`, "warn");
    }
  }

  /**
   * Reads every record this agent left (oldest first). Anything unreadable, foreign, misnamed or
   * older than maxAgeMs is logged and removed; leftover temp files are removed silently.
   */
  async load(maxAgeMs: number): Promise<JournalRecord[]> {
    await this.ensureDir();
    const out: JournalRecord[] = [];
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name);
      if (name.startsWith(".") && name.endsWith(".tmp")) {
        await unlink(path).catch(() => undefined);
        continue;
      }
      const rec = await this.read(path, name);
      if (typeof rec === "string") {
        this.say(`journal: skipped and removed ${name}: ${rec}`, "warn");
        await unlink(path).catch(() => undefined);
        continue;
      }
      if (Date.now() - rec.at > maxAgeMs) {
        this.say(`journal: removed ${name}, older than the ${Math.round(maxAgeMs / 1000)} s bound`, "warn");
        await unlink(path).catch(() => undefined);
        continue;
      }
      this.index.set(name, rec.at);
      out.push(rec);
    }
    out.sort((a, b) => a.at - b.at);
    while (out.length > this.maxFiles) {
      const old = out.shift();
      if (!old) break;
      await this.remove(old.jobId, old.attempt);
      this.say(`journal full (${this.maxFiles} files): dropped the oldest, job ${old.jobId}`, "warn");
    }
    return out;
  }

  private async read(path: string, name: string): Promise<JournalRecord | string> {
    const m = FILE_NAME.exec(name);
    if (!m) return "not a journal file name";
    try {
      const st = await stat(path);
      if (!st.isFile()) return "not a regular file";
      if (st.size > MAX_FILE_BYTES) return `larger than ${MAX_FILE_BYTES} bytes`;
      let json: unknown;
      try {
        json = JSON.parse(await readFile(path, "utf8"));
      } catch {
        return "not valid JSON";
      }
      const parsed = RecordSchema.safeParse(json);
      if (!parsed.success) return `invalid: ${parsed.error.issues[0]?.message ?? "bad record"}`;
      const r = parsed.data;
      if (r.agent !== this.key) return "written by another agent identity";
      if (r.jobId !== m[1] || r.attempt !== Number(m[2])) return "its name and its content disagree";
      if (r.spec.jobId !== r.jobId || r.spec.attempt !== r.attempt) return "its spec is for another attempt";
      const frames = r.frames.filter(isFenced);
      if (frames.length !== r.frames.length || frames.some((f) => f.jobId !== r.jobId || f.attempt !== r.attempt)) {
        return "it holds frames of another attempt";
      }
      if (r.finished !== frames.some((f) => f.type === "job_finished")) return "finished without a result";
      return { ...r, frames };
    } catch (err) {
      return (err as Error).message;
    }
  }
}

/**
 * The frames a restarted agent sends for an attempt its dead process left unfinished: the step
 * that was running ends failed (it died with the process), later steps were skipped, and the
 * attempt is FAILED saying so. Steps that had finished keep the outcome they reported.
 */
export function finishAbandoned(rec: JournalRecord): FencedAgentMessage[] {
  const fence = { jobId: rec.jobId, attempt: rec.attempt, leaseToken: rec.leaseToken };
  const finished = new Map<string, Extract<FencedAgentMessage, { type: "step_finished" }>>();
  const started = new Map<string, string>();
  for (const f of rec.frames) {
    if (f.type === "step_finished") finished.set(f.stepId, f);
    if (f.type === "step_started") started.set(f.stepId, f.startedAt);
  }
  const lastDone = [...finished.keys()].at(-1);
  // Every step finished (the last one's result was journaled, the attempt's was not): none is
  // left that "did not run".
  const allDone = rec.spec.steps.every((s) => finished.has(s.id));
  const reason = rec.running
    ? diedReason(rec.running)
    : rec.starting
      ? diedBeforeReason(rec.starting)
      : allDone
        ? `the agent process died after its last step (${lastDone}) finished, before the attempt finished; ` +
          "its artifacts may be missing"
        : `the agent process died before the attempt finished${lastDone ? ` (after step ${lastDone} finished)` : ""}; ` +
          "its remaining steps did not run and its artifacts may be missing";
  const extra: FencedAgentMessage[] = [];
  const steps: StepResult[] = [];
  let over = false;
  for (const step of rec.spec.steps) {
    const done = finished.get(step.id);
    if (done && !over) {
      steps.push({
        stepId: step.id,
        action: step.action,
        outcome: done.outcome,
        exitCode: done.exitCode,
        durationMs: done.durationMs,
        ...(done.error ? { error: done.error } : {}),
      });
      if (done.outcome !== "succeeded") over = true;
      continue;
    }
    if (step.id === rec.running && !over) {
      const startedAt = started.get(step.id);
      const durationMs = startedAt ? Math.max(0, Date.now() - Date.parse(startedAt)) : 0;
      extra.push({
        type: "step_finished",
        ...fence,
        stepId: step.id,
        outcome: "failed",
        exitCode: null,
        durationMs,
        error: reason,
      });
      steps.push({ stepId: step.id, action: step.action, outcome: "failed", exitCode: null, error: reason });
      over = true;
      continue;
    }
    if (step.id === rec.starting && !rec.running && !over) {
      // Announced, never spawned: it did not run.
      const skipped = { stepId: step.id, outcome: "skipped" as const, exitCode: null, error: reason };
      extra.push({ type: "step_finished", ...fence, ...skipped, durationMs: 0 });
      steps.push({ ...skipped, action: step.action });
      over = true;
      continue;
    }
    over = true;
    steps.push({ stepId: step.id, action: step.action, outcome: "skipped", exitCode: null });
  }
  const result: ExecutionResult = {
    jobId: rec.jobId,
    attempt: rec.attempt,
    status: "FAILED",
    steps,
    artifacts: rec.frames.flatMap((f) => (f.type === "artifact_ready" ? [f.artifact] : [])),
    error: reason,
  };
  extra.push({ type: "job_finished", ...fence, status: "FAILED", result });
  return extra;
}
