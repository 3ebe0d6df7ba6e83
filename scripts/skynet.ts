// `npx skynet <command>` (or `npm run skynet -- <command>`): the operator CLI for the SKYNET JSON
// API. See HELP for the commands, where the URL and token come from, and the exit codes.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { agents, artifacts, health } from "./cli/admin.ts";
import { configPath, resolveConnection } from "./cli/config.ts";
import { EXIT, ServerError, UsageError } from "./cli/errors.ts";
import { Api } from "./cli/http.ts";
import * as job from "./cli/jobs.ts";
import * as permission from "./cli/permissions.ts";

const HELP = `usage: npx skynet <command> [options]        (or: npm run skynet -- <command> [options])

jobs
  task <intent…> [--project ID] [-f]   submit a task; shows the plan (and what needs approval);
                                       -f follows it to its end; -q prints only the job id
  jobs [--status S] [--limit N] [--cursor C]    recent jobs with their project
  status <jobId> [--full]              steps, params (--full: uncut), log tail
  wait <jobId> [--timeout S]           wait for the job to end
  approve <jobId> [-f]                 run a WRITE/ADMIN plan (-f: follow it)
  deny <jobId> [--reason R]  ·  cancel <jobId> [--reason R]
  retry <jobId> [-f]                   run the job's task again as a new job
  redispatch <jobId>                   re-send the dispatch message (idempotent)
  events <jobId>  ·  ops <jobId>       ledger events, operation counts
  logs <jobId> [-f] [--tail N] [--grep TEXT]    the whole log; -f streams it live to the end
  artifacts list <jobId>  ·  artifacts get <jobId> <name> [-o FILE|-]
coding agent (code_task) approvals
  permissions [list]                   requests waiting: id, job, tool, exact command or path,
                                       preview, expiry
  allow <requestId>  ·  deny <requestId>      allow that one call once, or deny it
  (deny with a job id denies the job's plan; permissions allow|deny <requestId> also work)
agents
  agents [list]  ·  agents pair [--name N]  ·  agents tokens  ·  agents revoke <tokenId>
server
  health                               the server's /health

options: --json (machine-readable output), --url URL, --token TOKEN, --version, -h/--help

The server URL and API token come from, first found wins: --url/--token, SKYNET_URL/SKYNET_API_TOKEN,
the config file ${configPath()} ({"url": "…", "token": "…"}; SKYNET_CONFIG sets another path),
API_TOKEN in ./.dev.vars, and http://127.0.0.1:8787.
exit codes: 0 done (with -f/wait: the job succeeded), 1 server or network error or the job did not
succeed, 2 usage or configuration error, 70 a bug in this CLI.`;

function version(): string {
  const pkg = JSON.parse(readFileSync(join(import.meta.dirname, "..", "package.json"), "utf8")) as { version?: string };
  return pkg.version ?? "unknown";
}

function parse(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        project: { type: "string" },
        follow: { type: "boolean", short: "f" },
        quiet: { type: "boolean", short: "q" },
        "no-wait": { type: "boolean" },
        status: { type: "string" },
        limit: { type: "string" },
        cursor: { type: "string" },
        tail: { type: "string" },
        grep: { type: "string" },
        reason: { type: "string" },
        timeout: { type: "string" },
        name: { type: "string" },
        output: { type: "string", short: "o" },
        full: { type: "boolean" },
        json: { type: "boolean" },
        url: { type: "string" },
        token: { type: "string" },
        version: { type: "boolean", short: "v" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    // parseArgs reports unknown options and missing values as TypeErrors with a code.
    if (err instanceof TypeError && "code" in err && String(err.code).startsWith("ERR_PARSE_ARGS")) {
      throw new UsageError(`${err.message}; see --help`);
    }
    throw err;
  }
}

async function main(argv: string[]): Promise<number> {
  const { values: v, positionals } = parse(argv);
  if (v.version) {
    console.log(v.json ? JSON.stringify({ version: version() }) : `skynet ${version()}`);
    return EXIT.ok;
  }
  const [cmd, ...args] = positionals;
  if (v.help || cmd === "help") {
    console.log(HELP);
    return EXIT.ok;
  }
  if (!cmd) {
    console.error(HELP);
    return EXIT.usage;
  }
  const ctx: job.Ctx = {
    api: new Api(resolveConnection({ url: v.url, token: v.token })),
    args,
    json: v.json === true,
    full: v.full === true,
    follow: v.follow === true,
    quiet: v.quiet === true,
    wait: v["no-wait"] !== true,
    project: v.project,
    status: v.status,
    limit: v.limit,
    cursor: v.cursor,
    tail: v.tail,
    grep: v.grep,
    reason: v.reason,
    timeout: v.timeout,
    name: v.name,
    output: v.output,
  };
  switch (cmd) {
    case "task":
      return job.task(ctx);
    case "jobs":
      return job.jobs(ctx);
    case "status":
      return job.status(ctx);
    case "wait":
      return job.wait(ctx);
    case "deny":
      // One verb, two kinds of id: job ids start with job_, the agent's request ids with pr_.
      if (ctx.args.length === 0)
        throw new UsageError("deny needs a job id (job_…) or a permission request id (pr_…); see --help");
      return ctx.args[0]?.startsWith("job_") ? job.decide(ctx, cmd) : permission.decide(ctx, "deny");
    case "approve":
    case "cancel":
      return job.decide(ctx, cmd);
    case "allow":
      return permission.decide(ctx, "allow");
    case "permissions":
      return permission.permissions(ctx);
    case "retry":
      return job.retry(ctx);
    case "redispatch":
      return job.redispatch(ctx);
    case "events":
      return job.events(ctx);
    case "ops":
      return job.ops(ctx);
    case "logs":
      return job.logs(ctx);
    case "artifacts":
      return artifacts(ctx);
    case "agents":
      return agents(ctx);
    case "health":
      return health(ctx);
    default:
      throw new UsageError(`unknown command "${cmd}"; see --help`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    // Only a mistake in the command line is a usage error; any other exception (a TypeError
    // included) is a bug in this CLI and says so, with its stack.
    if (err instanceof UsageError || err instanceof ServerError) {
      console.error(`skynet: ${err.message}`);
      process.exit(err instanceof UsageError ? EXIT.usage : EXIT.failed);
    }
    console.error(err instanceof Error && err.stack ? err.stack : String(err));
    console.error(`skynet: this is a bug (exit ${EXIT.bug}), please report it with the lines above`);
    process.exit(EXIT.bug);
  },
);
