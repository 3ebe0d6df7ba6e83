// Job commands: task, jobs, status, wait, approve, deny, cancel, retry, redispatch, events, ops, logs.
import { writeSync } from "node:fs";
import { z } from "zod";
import { JobListResponseSchema, JobStatusSchema, type JobView, JobViewSchema } from "../../protocol/index.ts";
import { safeForTerminal } from "../../src/lib/text-safety.ts";
import { EXIT, UsageError } from "./errors.ts";
import { followJob, streamLog, waitWhile } from "./follow.ts";
import type { Api } from "./http.ts";
import { CMD, renderJob, renderJobList, table } from "./render.ts";

export interface Ctx {
  api: Api;
  args: string[];
  json: boolean;
  full: boolean;
  follow: boolean;
  quiet: boolean;
  wait: boolean;
  project?: string;
  status?: string;
  limit?: string;
  cursor?: string;
  tail?: string;
  grep?: string;
  reason?: string;
  timeout?: string;
  name?: string;
  output?: string;
}

const out = (text: string) => console.log(text);
const printJson = (value: unknown) => out(JSON.stringify(value, null, 2));
/** Log lines go out unbuffered and in order even when there are hundreds of thousands. */
const writeLine = (line: string) => writeSync(1, `${line}\n`);

const LogsSchema = z.object({ jobId: z.string(), status: z.string(), lines: z.array(z.string()) });
const TAIL_LINES = 20;
const CreatedSchema = z.object({ jobId: z.string() });

const getJob = (ctx: Ctx, id: string): Promise<JobView> =>
  ctx.api.read(JobViewSchema, ctx.api.client.api.jobs[":id"].$get({ param: { id } }));

export function jobIdArg(ctx: Ctx, cmd: string): string {
  const id = ctx.args[0];
  if (!id) throw new UsageError(`${cmd} needs a job id, e.g. ${CMD} ${cmd} job_0123456789abcdef; see --help`);
  if (!/^job_[0-9a-z]{10,40}$/.test(id))
    throw new UsageError(`"${id}" is not a job id (they look like job_0123456789abcdef)`);
  if (ctx.args.length > 1) throw new UsageError(`${cmd} takes one job id; got ${ctx.args.length} arguments`);
  return id;
}

const isFinishedOrRunning = (job: JobView) => ["RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"].includes(job.status);

/** A job's view plus its log's last lines (asking for one more tells whether earlier ones exist). */
async function showJob(ctx: Ctx, job: JobView): Promise<void> {
  if (ctx.json) return printJson(job);
  let log: { lines: string[]; earlier: boolean } | undefined;
  if (isFinishedOrRunning(job)) {
    const logs = await ctx.api.read(
      LogsSchema,
      ctx.api.client.api.jobs[":id"].logs.$get({ param: { id: job.id }, query: { tail: String(TAIL_LINES + 1) } }),
    );
    log = { lines: logs.lines.slice(-TAIL_LINES), earlier: logs.lines.length > TAIL_LINES };
  }
  out(renderJob(job, { full: ctx.full, log }));
}

/** Follows a job to its end, printing status changes and log lines; exit 0 only on success. */
async function follow(ctx: Ctx, id: string): Promise<number> {
  const job = await followJob(
    ctx.api,
    id,
    (j) => {
      if (!ctx.json) out(renderJob(j, { full: ctx.full }));
    },
    (line) => {
      if (!ctx.json) writeLine(`  | ${line}`);
    },
  );
  if (ctx.json) printJson(job);
  return job.status === "SUCCEEDED" ? EXIT.ok : EXIT.failed;
}

/** Waits (up to a minute) while the planner works, so that `task` can show the plan it made. */
async function untilPlanned(ctx: Ctx, id: string): Promise<JobView> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const job = await getJob(ctx, id);
    if (job.status !== "CREATED" || Date.now() > deadline) return job;
    await waitWhile(ctx.api, id, "CREATED");
  }
}

export async function task(ctx: Ctx): Promise<number> {
  const intent = ctx.args.join(" ").trim();
  if (!intent) throw new UsageError(`task needs an intent, e.g. ${CMD} task "check git status"`);
  const res = await ctx.api.read(
    CreatedSchema,
    ctx.api.client.api.tasks.$post({ json: { intent, projectId: ctx.project } }),
  );
  if (ctx.follow) {
    if (!ctx.json && !ctx.quiet) out(`submitted ${res.jobId}`);
    return follow(ctx, res.jobId);
  }
  const job = ctx.wait ? await untilPlanned(ctx, res.jobId) : await getJob(ctx, res.jobId);
  if (ctx.quiet) out(job.id);
  else await showJob(ctx, job);
  return EXIT.ok;
}

export async function jobs(ctx: Ctx): Promise<number> {
  const status = ctx.status === undefined ? undefined : JobStatusSchema.safeParse(ctx.status);
  if (status && !status.success) throw new UsageError(`--status is one of ${JobStatusSchema.options.join(", ")}`);
  const page = await ctx.api.read(
    JobListResponseSchema,
    ctx.api.client.api.jobs.$get({ query: { status: status?.data, limit: ctx.limit, cursor: ctx.cursor } }),
  );
  if (ctx.json) printJson(page);
  else {
    out(renderJobList(page.jobs));
    if (page.nextCursor) out(`more: ${CMD} jobs --cursor ${page.nextCursor}`);
  }
  return EXIT.ok;
}

export async function status(ctx: Ctx): Promise<number> {
  await showJob(ctx, await getJob(ctx, jobIdArg(ctx, "status")));
  return EXIT.ok;
}

export async function wait(ctx: Ctx): Promise<number> {
  const id = jobIdArg(ctx, "wait");
  const job = await ctx.api.read(
    JobViewSchema,
    ctx.api.client.api.jobs[":id"].wait.$get({ param: { id }, query: { timeoutS: ctx.timeout } }),
  );
  await showJob(ctx, job);
  return ["SUCCEEDED"].includes(job.status) ? EXIT.ok : EXIT.failed;
}

export async function decide(ctx: Ctx, verb: "approve" | "deny" | "cancel"): Promise<number> {
  const id = jobIdArg(ctx, verb);
  if (verb === "approve" && ctx.reason) throw new UsageError("--reason goes with deny and cancel");
  const jobs = ctx.api.client.api.jobs[":id"];
  const decision = ctx.reason ? { reason: ctx.reason } : {};
  const job = await ctx.api.read(
    JobViewSchema,
    verb === "approve" ? jobs.approve.$post({ param: { id } }) : jobs[verb].$post({ param: { id }, json: decision }),
  );
  if (verb === "approve" && ctx.follow) return follow(ctx, id);
  await showJob(ctx, job);
  return EXIT.ok;
}

/** Runs a job's task again as a new job (what Telegram's /retry does). */
export async function retry(ctx: Ctx): Promise<number> {
  const old = await getJob(ctx, jobIdArg(ctx, "retry"));
  const res = await ctx.api.read(
    CreatedSchema,
    ctx.api.client.api.tasks.$post({ json: { intent: old.intent, projectId: old.projectId } }),
  );
  if (!ctx.json && !ctx.quiet) out(`retrying ${old.id} as ${res.jobId}`);
  if (ctx.follow) return follow(ctx, res.jobId);
  const job = await untilPlanned(ctx, res.jobId);
  if (ctx.quiet) out(job.id);
  else await showJob(ctx, job);
  return EXIT.ok;
}

export async function redispatch(ctx: Ctx): Promise<number> {
  const id = jobIdArg(ctx, "redispatch");
  const res = await ctx.api.read(
    z.object({ jobId: z.string(), attempt: z.number(), redelivered: z.boolean() }),
    ctx.api.client.api.jobs[":id"].redispatch.$post({ param: { id } }),
  );
  if (ctx.json) printJson(res);
  else out(`re-sent the dispatch message of ${res.jobId} (attempt ${res.attempt})`);
  return EXIT.ok;
}

const EventsSchema = z.object({
  jobId: z.string(),
  events: z.array(
    z.object({
      seq: z.number(),
      from: z.string().nullable(),
      to: z.string(),
      event: z.string(),
      detail: z.unknown(),
      at: z.string(),
    }),
  ),
});

export async function events(ctx: Ctx): Promise<number> {
  const res = await ctx.api.read(
    EventsSchema,
    ctx.api.client.api.jobs[":id"].events.$get({ param: { id: jobIdArg(ctx, "events") } }),
  );
  if (ctx.json) printJson(res);
  else {
    const rows = res.events.map((e) => [
      String(e.seq),
      e.at,
      `${e.from ?? "·"} → ${e.to}`,
      e.event,
      e.detail === null || e.detail === undefined ? "" : JSON.stringify(e.detail),
    ]);
    out(table([["seq", "at", "transition", "event", "detail"], ...rows]));
  }
  return EXIT.ok;
}

export async function ops(ctx: Ctx): Promise<number> {
  const res = await ctx.api.read(
    z.object({ jobId: z.string(), ops: z.record(z.string(), z.number()) }),
    ctx.api.client.api.jobs[":id"].ops.$get({ param: { id: jobIdArg(ctx, "ops") } }),
  );
  if (ctx.json) printJson(res);
  else out(table([["operation", "count"], ...Object.entries(res.ops).map(([k, v]) => [k, String(v)])]));
  return EXIT.ok;
}

export async function logs(ctx: Ctx): Promise<number> {
  const id = jobIdArg(ctx, "logs");
  if (ctx.follow) {
    if (ctx.tail || ctx.grep)
      throw new UsageError("logs -f prints the whole log as it grows; --tail and --grep go without -f");
    const final = await streamLog(ctx.api, id, (line) => writeLine(ctx.json ? JSON.stringify({ line }) : line));
    if (ctx.json) writeLine(JSON.stringify({ end: { status: final } }));
    return EXIT.ok;
  }
  if (!ctx.tail && !ctx.grep) {
    // The whole log, streamed: from the archive once the job ended, else what the job holds.
    const res = await ctx.api.fetch(`/api/jobs/${id}/log`);
    const lines: string[] = [];
    let partial = "";
    const decoder = new TextDecoder();
    const emit = (line: string) => (ctx.json ? lines.push(line) : writeLine(safeForTerminal(line)));
    for await (const chunk of res.body ?? []) {
      const parts = (partial + decoder.decode(chunk, { stream: true })).split("\n");
      partial = parts.pop() ?? "";
      for (const p of parts) emit(p);
    }
    if (partial) emit(partial);
    if (ctx.json) printJson({ jobId: id, lines });
    return EXIT.ok;
  }
  const res = await ctx.api.read(
    LogsSchema,
    ctx.api.client.api.jobs[":id"].logs.$get({ param: { id }, query: { tail: ctx.tail, grep: ctx.grep } }),
  );
  if (ctx.json) printJson(res);
  else for (const line of res.lines) writeLine(safeForTerminal(line));
  return EXIT.ok;
}
