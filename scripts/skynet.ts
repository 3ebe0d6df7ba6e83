// `npm run skynet -- <command>`: a small CLI for the SKYNET JSON API with live progress.
// Reads SKYNET_URL (default http://127.0.0.1:8787) and SKYNET_API_TOKEN (default: API_TOKEN
// from .dev.vars). Everything printed that comes from a job (intent, params, log lines) has
// terminal control sequences removed and bidi/zero-width characters made visible.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { z } from "zod";
import { ErrorBodySchema, JobListResponseSchema, type JobView, JobViewSchema } from "../protocol/index.ts";
import { reviewLines } from "../src/lib/step-review.ts";
import { safeForTerminal } from "../src/lib/text-safety.ts";

const HELP = `usage: npm run skynet -- <command> [options]

commands:
  task <intent…> [--project ID] [--follow]   submit a task (and follow it until it ends)
  jobs [--status S] [--limit N]               list recent jobs
  status <jobId> [--full]                     show a job: every step's action and params, log tail
                                              (--full: file contents and long params uncut)
  approve <jobId> | deny <jobId> | cancel <jobId>
  logs <jobId> [-f] [--tail N] [--grep TEXT]  print (and follow) a job's log

environment: SKYNET_URL (default http://127.0.0.1:8787), SKYNET_API_TOKEN (default API_TOKEN in .dev.vars)`;

class CliError extends Error {}

function apiToken(): string {
  if (process.env.SKYNET_API_TOKEN) return process.env.SKYNET_API_TOKEN;
  try {
    const m = /^API_TOKEN=(.*)$/m.exec(readFileSync(".dev.vars", "utf8"));
    if (m?.[1]) return m[1].trim();
  } catch {}
  throw new CliError("no API token: set SKYNET_API_TOKEN or run `npm run dev` once to create .dev.vars");
}

const base = (process.env.SKYNET_URL ?? "http://127.0.0.1:8787").replace(/\/$/, "");

async function call(path: string, init: RequestInit = {}): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      ...init,
      headers: { Authorization: `Bearer ${apiToken()}`, "Content-Type": "application/json" },
    });
  } catch {
    throw new CliError(`cannot reach ${base}: is \`npm run dev\` running?`);
  }
  const body: unknown = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = ErrorBodySchema.safeParse(body);
    throw new CliError(`${res.status}: ${err.success ? err.data.error.message : "request failed"}`);
  }
  return body;
}

const getJob = async (id: string): Promise<JobView> => JobViewSchema.parse(await call(`/api/jobs/${id}`));

/** Longest param value shown without --full. */
const PREVIEW_CHARS = 2000;
let fullParams = false;

function render(job: JobView): string {
  const lines = [`${job.id}  ${job.status}  risk ${job.risk ?? "?"}  "${job.intent}"`];
  for (const s of job.steps) {
    const exit = s.exitCode === null ? "" : ` exit ${s.exitCode}`;
    const took = s.durationMs === null ? "" : ` ${s.durationMs} ms`;
    lines.push(`  ${s.stepId} ${s.action.padEnd(14)} ${s.state}${exit}${took}${s.error ? `  (${s.error})` : ""}`);
  }
  const approving = job.status === "PLANNED" && job.needsApproval;
  if (job.review && (approving || fullParams)) {
    lines.push(approving ? "  to approve, check what each step will do:" : "  steps:");
    lines.push(...reviewLines(job.review, fullParams ? Number.POSITIVE_INFINITY : PREVIEW_CHARS).map((l) => `  ${l}`));
    if (
      !fullParams &&
      job.review.steps.some((s) => s.fields.some((f) => (f.omitted ?? 0) > 0 || f.value.length > PREVIEW_CHARS))
    ) {
      lines.push(`  (some values are cut: npm run skynet -- status ${job.id} --full shows them whole)`);
    }
  }
  if (approving) lines.push(`  waiting for approval: npm run skynet -- approve ${job.id}`);
  if (job.error) lines.push(`  error: ${job.error}`);
  return safeForTerminal(lines.join("\n"));
}

const TERMINAL = ["SUCCEEDED", "FAILED", "CANCELLED"];

async function follow(id: string): Promise<JobView> {
  let shown = "";
  let printed = 0;
  for (;;) {
    const job = await getJob(id);
    const text = render(job);
    if (text !== shown) {
      console.log(text);
      shown = text;
    }
    const logs = z.object({ lines: z.array(z.string()) }).parse(await call(`/api/jobs/${id}/logs?tail=10000`));
    for (const line of logs.lines.slice(printed)) console.log(`  | ${safeForTerminal(line)}`);
    printed = Math.max(printed, logs.lines.length);
    if (TERMINAL.includes(job.status)) return job;
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      project: { type: "string" },
      follow: { type: "boolean", short: "f" },
      status: { type: "string" },
      limit: { type: "string" },
      tail: { type: "string" },
      grep: { type: "string" },
      full: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [cmd, ...rest] = positionals;
  fullParams = values.full === true;
  if (!cmd || values.help) {
    console.log(HELP);
    return cmd || values.help ? 0 : 2;
  }
  const need = (what: string): string => {
    const v = rest[0];
    if (!v) throw new CliError(`${cmd} needs a ${what}; see --help`);
    return v;
  };
  switch (cmd) {
    case "task": {
      const intent = rest.join(" ").trim();
      if (!intent) throw new CliError('task needs an intent, e.g. npm run skynet -- task "check git status"');
      const res = z
        .object({ jobId: z.string() })
        .parse(
          await call("/api/tasks", { method: "POST", body: JSON.stringify({ intent, projectId: values.project }) }),
        );
      console.log(`submitted ${res.jobId}`);
      if (values.follow) return (await follow(res.jobId)).status === "SUCCEEDED" ? 0 : 1;
      return 0;
    }
    case "jobs": {
      const q = new URLSearchParams();
      if (values.status) q.set("status", values.status);
      if (values.limit) q.set("limit", values.limit);
      const page = JobListResponseSchema.parse(await call(`/api/jobs?${q}`));
      for (const j of page.jobs) {
        console.log(safeForTerminal(`${j.id}  ${j.status.padEnd(9)}  ${j.createdAt}  ${j.intent}`));
      }
      return 0;
    }
    case "status":
      console.log(render(await getJob(need("job id"))));
      return 0;
    case "approve":
    case "deny":
    case "cancel":
      console.log(render(JobViewSchema.parse(await call(`/api/jobs/${need("job id")}/${cmd}`, { method: "POST" }))));
      return 0;
    case "logs": {
      const id = need("job id");
      if (values.follow) {
        await follow(id);
        return 0;
      }
      const q = new URLSearchParams();
      if (values.tail) q.set("tail", values.tail);
      if (values.grep) q.set("grep", values.grep);
      const logs = z.object({ lines: z.array(z.string()) }).parse(await call(`/api/jobs/${id}/logs?${q}`));
      console.log(safeForTerminal(logs.lines.join("\n")));
      return 0;
    }
    default:
      throw new CliError(`unknown command "${cmd}"; see --help`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`skynet: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(err instanceof CliError || err instanceof TypeError ? 2 : 1);
  },
);
