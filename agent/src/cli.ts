// skynet-agent: pair this machine with a SKYNET server, connect and serve workspaces, or show
// status. `npx skynet-agent --help` (Node ≥ 22.18) or `npm run agent -- --help` from the repo.
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { describeIssues, ErrorBodySchema, PairRequestSchema, PairResponseSchema } from "../../protocol/index.ts";
import { Agent } from "./agent.ts";
import {
  AgentConfigSchema,
  DEFAULT_CONFIG_PATH,
  DEFAULTS,
  parsePathFlags,
  parseWorkspaces,
  readStoredConfig,
  writeStoredConfig,
} from "./config.ts";
import { AGENT_VERSION } from "./connection.ts";
import { containment } from "./contain.ts";
import { doctor, status } from "./doctor.ts";
import { createLogger, LOG_FORMATS, type LogFormat } from "./logger.ts";
import { Redactor } from "./secrets.ts";
import { SERVICE_HELP, service } from "./service.ts";
import { EXIT, fail, reportFailure } from "./usage.ts";

const FATAL_EXIT: Record<number, number> = { 4000: EXIT.replaced, 4001: EXIT.tokenRefused, 4003: EXIT.upgrade };
const DEFAULT_DRAIN_TIMEOUT_S = 300;

const HELP: Record<string, string> = {
  main: `skynet-agent ${AGENT_VERSION} — CHATHAN, the SKYNET laptop agent

usage: skynet-agent <command> [options]

commands:
  pair <serverUrl> <code>   exchange a pairing code (from /pair or the API) for an agent token
  connect                   connect to the server and run jobs in your workspaces
  status                    show this agent as the server sees it (connected, jobs, last heartbeat)
  doctor                    check git, runners, workspaces, server, token, clock and containment
  service install|uninstall|status|logs
                            run \`connect\` as a systemd user service (Linux) or launchd agent (macOS)

Run \`skynet-agent <command> --help\` for a command's options.

exit codes:
  0  stopped (a signal, after draining or cancelling the running jobs)
  1  an error the system reported (file, network); for doctor: a check failed
  2  usage error (bad flags or arguments)
  3  the server refused this agent's token (unknown or revoked): pair again
  4  another process connected with this agent's token (this one stopped)
  5  the server speaks another protocol version: upgrade the agent
  70 a bug in the agent (its stack is printed): please report it`,
  pair: `usage: skynet-agent pair <serverUrl> <code> [--name NAME] [--config PATH]

Exchanges a one-time pairing code (8 letters/digits, valid 10 minutes) for an agent token and
saves it to the config file (default ${DEFAULT_CONFIG_PATH}, mode 0600).`,
  connect: `usage: skynet-agent connect [options]

  --workspace <projectId>=<dir>  serve <dir> as project <projectId> (repeatable; a bare <dir> is "default")
  --server URL                   server URL (default: from the config file, or SKYNET_SERVER_URL)
  --token TOKEN                  agent token (default: config file, or SKYNET_AGENT_TOKEN; prefer the env)
  --config PATH                  config file (default ${DEFAULT_CONFIG_PATH})
  --name NAME                    agent name shown in /agents (default: from pairing, or the hostname)
  --allow-shell                  allow run_command (ADMIN; explicit commands as argv, still no shell)
  --max-concurrency N            jobs run at once (default ${DEFAULTS.maxConcurrency})
  --cancel-grace-ms MS           SIGTERM→SIGKILL grace on cancel (default ${DEFAULTS.cancelGraceMs})
  --output-cap-bytes N           output forwarded per step before truncation (default 1 GiB)
  --deny-path [projectId=]GLOB   also treat matching files as secrets (repeatable; see below)
  --allow-path [projectId=]GLOB  lift a secret-file default for matching files, e.g. .env.example
  --drain-timeout-s S            on SIGTERM/SIGINT, let running jobs finish for up to S seconds
                                 (default ${DEFAULT_DRAIN_TIMEOUT_S}); a second signal cancels them
  --log-format text|json         log lines as "<ISO time> <LEVEL> message" (default) or one JSON
                                 object per line: {"time","level","msg","fields"} (or SKYNET_AGENT_LOG_FORMAT)

Secret files (.env*, .dev.vars, private keys, .npmrc, .netrc, .git-credentials, .aws/, .wrangler/,
.skynet/, … and this config file) are never read, listed, searched or written by an action.
The config file's "secretPaths" ({"<projectId>|*": {"deny": [...], "allow": [...]}}) does the same.

After a drop the agent reconnects with backoff: the first retry within ${DEFAULTS.reconnectBaseMs / 2}–${DEFAULTS.reconnectBaseMs} ms,
doubling (with jitter) up to ${DEFAULTS.reconnectMaxMs / 1000} s between tries, well inside the server's reconnect
grace (RECONNECT_GRACE_SECONDS, default 30 s). Results and artifact uploads are kept across outages.`,
  status: `usage: skynet-agent status [--config PATH]

Shows the saved configuration (never the token) and this agent as the server sees it (GET
/agent/me with the agent token): connected or not, draining, its jobs and its last heartbeat.`,
  doctor: `usage: skynet-agent doctor [--config PATH] [--workspace <projectId>=<dir>]...

Checks git and the runners (npm, pnpm, yarn, pytest, go, cargo, make), each workspace (present,
writable, a git repository), the server (reachable, token accepted, clock skew) and process
containment. Each line is OK, WARN or FAIL with the fix; exits 1 when a check FAILs.`,
  service: SERVICE_HELP,
};

async function pair(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { name: { type: "string" }, config: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) return void console.log(HELP.pair);
  const [serverUrl, code] = positionals;
  if (!serverUrl || !code) fail("pair needs a server URL and a pairing code", HELP.pair);
  const url = z.url({ protocol: /^https?$/ }).safeParse(serverUrl);
  if (!url.success) fail(`not an http(s) URL: ${serverUrl}`);
  const name = values.name ?? (await import("node:os")).hostname().slice(0, 100);
  const body = PairRequestSchema.safeParse({ code: code.trim().toUpperCase(), name });
  if (!body.success) fail(`invalid pairing request: ${body.error.issues.map((i) => i.message).join("; ")}`);
  const base = url.data.replace(/\/+$/, "");
  let res: Response;
  try {
    res = await fetch(`${base}/agent/pair`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body.data),
    });
  } catch (err) {
    fail(`could not reach ${base}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const json: unknown = await res.json().catch(() => ({}));
  const paired = PairResponseSchema.safeParse(json);
  if (res.status !== 201 || !paired.success) {
    const error = ErrorBodySchema.safeParse(json);
    fail(`pairing refused (${res.status}): ${error.success ? error.data.error.message : "the server sent no token"}`);
  }
  const path = values.config ?? DEFAULT_CONFIG_PATH;
  await writeStoredConfig(path, { serverUrl: base, agentId: paired.data.agentId, token: paired.data.token, name });
  console.log(`paired as ${paired.data.agentId} (${name}); token saved to ${path}`);
  console.log(`next: skynet-agent connect --workspace default=/path/to/your/project`);
}

async function connect(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      workspace: { type: "string", multiple: true, default: [] },
      server: { type: "string" },
      token: { type: "string" },
      config: { type: "string" },
      name: { type: "string" },
      "allow-shell": { type: "boolean", default: false },
      "max-concurrency": { type: "string" },
      "cancel-grace-ms": { type: "string" },
      "output-cap-bytes": { type: "string" },
      "deny-path": { type: "string", multiple: true, default: [] },
      "allow-path": { type: "string", multiple: true, default: [] },
      "drain-timeout-s": { type: "string" },
      "log-format": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return void console.log(HELP.connect);
  const logFormat = values["log-format"] ?? process.env.SKYNET_AGENT_LOG_FORMAT ?? "text";
  if (!LOG_FORMATS.includes(logFormat as LogFormat)) fail(`--log-format must be text or json, not "${logFormat}"`);
  const drainS = Number(values["drain-timeout-s"] ?? DEFAULT_DRAIN_TIMEOUT_S);
  if (!Number.isInteger(drainS) || drainS < 0 || drainS > 86_400) {
    fail("--drain-timeout-s must be a whole number of seconds from 0 to 86400");
  }
  const configPath = resolve(values.config ?? DEFAULT_CONFIG_PATH);
  const stored = await readStoredConfig(configPath);
  const num = (v: string | undefined, fallback: number) => (v === undefined ? fallback : Number(v));
  const candidate = {
    serverUrl: values.server ?? process.env.SKYNET_SERVER_URL ?? stored?.serverUrl,
    token: values.token ?? process.env.SKYNET_AGENT_TOKEN ?? stored?.token,
    name: values.name ?? stored?.name ?? (await import("node:os")).hostname().slice(0, 100),
    workspaces: parseWorkspaces(values.workspace),
    allowShell: values["allow-shell"],
    maxConcurrency: num(values["max-concurrency"], DEFAULTS.maxConcurrency),
    cancelGraceMs: num(values["cancel-grace-ms"], DEFAULTS.cancelGraceMs),
    outputCapBytes: num(values["output-cap-bytes"], DEFAULTS.outputCapBytes),
    reconnectBaseMs: DEFAULTS.reconnectBaseMs,
    reconnectMaxMs: DEFAULTS.reconnectMaxMs,
    secretPaths: parsePathFlags(values["deny-path"], values["allow-path"], stored?.secretPaths),
    configPath,
  };
  if (!candidate.serverUrl || !candidate.token) {
    fail(
      "no server or token: run `skynet-agent pair <serverUrl> <code>` first, or pass --server and SKYNET_AGENT_TOKEN",
    );
  }
  const parsed = AgentConfigSchema.safeParse(candidate);
  if (!parsed.success) {
    fail(describeIssues(parsed.error, { root: "config", max: 20, separator: "\n" }), HELP.connect);
  }
  const { stat } = await import("node:fs/promises");
  for (const [id, dir] of Object.entries(parsed.data.workspaces)) {
    const st = await stat(dir).catch(() => null);
    if (!st?.isDirectory()) fail(`workspace ${id}: ${dir} is not a directory`);
  }
  // The agent's own log lines never carry its token, whatever they quote.
  const logger = createLogger({ format: logFormat as LogFormat, redactor: new Redactor([parsed.data.token]) });
  // Named once at startup: how a step's process tree is contained here (and what is not).
  logger.info(`containment: ${(await containment()).detail}`);
  // Tests only: claim another protocol version, as an outdated agent would.
  const claimed = Number(process.env.SKYNET_AGENT_TEST_PROTOCOL_VERSION ?? Number.NaN);
  const agent = new Agent(parsed.data, {
    onFatal: (code) => process.exit(FATAL_EXIT[code] ?? EXIT.error),
    log: (line, level) => logger.log(level ?? "info", line),
    ...(Number.isInteger(claimed) ? { protocolVersion: claimed } : {}),
  });
  // First signal: drain (no new offers, running jobs finish up to the timeout); second: cancel.
  const interrupt = new AbortController();
  let signals = 0;
  const shutdown = async (signal: string) => {
    signals += 1;
    if (signals > 1) {
      logger.warn(`${signal} again: cancelling running jobs`);
      interrupt.abort();
      return;
    }
    const running = agent.runningJobs.length;
    logger.info(
      running > 0
        ? `${signal}: taking no new jobs; waiting up to ${drainS}s for ${running} running job(s) (signal again to cancel them)`
        : `${signal}: no job running; disconnecting`,
    );
    const drained = await agent.drain(drainS * 1000, interrupt.signal);
    if (!drained) logger.warn(`cancelling ${agent.runningJobs.length} running job(s)`);
    await agent.stop();
    logger.info("stopped");
    process.exit(EXIT.ok);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  agent.start();
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case "pair":
      return pair(rest);
    case "connect":
      return connect(rest);
    case "status":
      return status(rest, HELP.status as string);
    case "doctor":
      return doctor(rest, HELP.doctor as string);
    case "service":
      return service(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(HELP.main);
      return;
    case "--version":
      console.log(AGENT_VERSION);
      return;
    default:
      fail(`unknown command "${command}"`, HELP.main);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.exit(reportFailure("skynet-agent", err));
});
