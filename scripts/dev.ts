// `npm run dev`: runs SKYNET on this machine on the embedded defaults — local D1/R2/Queues/DOs
// under .wrangler/state, the offline rule planner unless ANTHROPIC_API_KEY is set — plus one
// local agent serving project "default": --workspace, or a small sample project created under
// .skynet/sample-project (see sample-project.ts). Ctrl-C stops everything.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { AGENT_ENV, NODE_FLAGS } from "../agent/src/service-files.ts";
import { ensureSampleProject } from "./sample-project.ts";
import { WRANGLER, wranglerDev } from "./wrangler.ts";

const HELP = `usage: npm run dev [-- --port 8787] [--workspace DIR] [--no-agent] [--allow-shell]
                  [--no-telegram] [--state-dir DIR]

Starts wrangler dev (Worker + local D1/R2/Queues/Durable Objects), applies the D1 migrations,
pairs and starts a local agent serving --workspace as project "default" (without it: a sample
project, a small git repository with tests and a build, created in .skynet/sample-project), and,
when TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET are set in .dev.vars, the Telegram long-poll
bridge. --state-dir keeps the local database, the agent's token and the sample project in DIR
instead of .wrangler/state and .skynet (a second, separate instance).`;

const ROOT = resolve(import.meta.dirname, "..");
const { values: flags } = parseArgs({
  options: {
    port: { type: "string", default: "8787" },
    workspace: { type: "string" },
    "state-dir": { type: "string" },
    "no-agent": { type: "boolean", default: false },
    "no-telegram": { type: "boolean", default: false },
    "allow-shell": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (flags.help) {
  console.log(HELP);
  process.exit(0);
}
const port = Number(flags.port);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(`--port must be a TCP port, got ${flags.port}`);
  process.exit(2);
}
const base = `http://127.0.0.1:${port}`;
const env = { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1" };
const children: ChildProcess[] = [];
const say = (msg: string) => console.log(`[skynet] ${msg}`);

/** .dev.vars holds the local secrets; the first run creates it with a random API token. */
function devVars(): Record<string, string> {
  const path = join(ROOT, ".dev.vars");
  if (!existsSync(path)) {
    const example = readFileSync(join(ROOT, ".dev.vars.example"), "utf8");
    const token = randomBytes(24).toString("hex");
    writeFileSync(path, example.replace(/^API_TOKEN=.*$/m, `API_TOKEN=${token}`), { mode: 0o600 });
    say("created .dev.vars with a random API_TOKEN");
  }
  const vars: Record<string, string> = {};
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m?.[1]) vars[m[1]] = (m[2] ?? "").trim();
  }
  return vars;
}

function start(
  name: string,
  args: string[],
  extraEnv: Record<string, string> = {},
  expected?: (code: number | null) => boolean,
): ChildProcess {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...env, ...extraEnv }, stdio: "inherit" });
  child.on("exit", (code, signal) => {
    if (!stopping && !expected?.(code)) {
      say(`${name} exited (${signal ?? code}); stopping`);
      void shutdown(1);
    }
  });
  children.push(child);
  return child;
}

let stopping = false;
async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  for (const c of children.reverse()) c.kill("SIGTERM");
  await sleep(500);
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));

async function waitForHealth(): Promise<void> {
  for (let i = 0; i < 240; i++) {
    try {
      const res = await fetch(`${base}/health`);
      if (res.status === 200 || res.status === 503) return;
    } catch {
      // not up yet
    }
    await sleep(250);
  }
  throw new Error(`the Worker did not answer on ${base}/health within 60 s`);
}

async function api(path: string, token: string, body: unknown): Promise<unknown> {
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const json: unknown = await res.json();
  if (!res.ok) throw new Error(`${path} answered ${res.status}: ${JSON.stringify(json)}`);
  return json;
}

const STATE_DIR = flags["state-dir"] ? resolve(flags["state-dir"]) : join(ROOT, ".skynet");
const AGENT_CONFIG = join(STATE_DIR, "agent.json");
/** wrangler's own default unless --state-dir asks for a separate instance. */
const PERSIST = flags["state-dir"] ? ["--persist-to", join(STATE_DIR, "wrangler")] : [];

/** The workspace of project "default": --workspace, else the sample project (made if missing). */
function defaultWorkspace(): string {
  if (flags.workspace) return resolve(flags.workspace);
  const dir = join(STATE_DIR, "sample-project");
  if (ensureSampleProject(dir)) say(`created a sample project to try tasks on: ${dir}`);
  return dir;
}

/**
 * The local agent runs as the package publishes it: its sources bundled by esbuild (agent/package.json
 * `build`, well under a second), rebuilt on every start so it is never stale. Run from the
 * TypeScript sources instead, Node's type stripping (a WebAssembly compiler) and the many modules
 * hold ≈ 35 MB more resident memory for the agent's whole life.
 */
let agentEntry: string | undefined;
function agentBundle(): string {
  if (!agentEntry) {
    execFileSync("npm", ["run", "build", "--silent", "--workspace", "agent"], { cwd: ROOT, env, stdio: "inherit" });
    agentEntry = join(ROOT, "agent/dist/skynet-agent.js");
  }
  return agentEntry;
}

/** Pairs (when there is no saved token) and starts the local agent; re-pairs once if refused. */
async function startLocalAgent(apiToken: string, workspace: string, mayRepair: boolean): Promise<void> {
  mkdirSync(STATE_DIR, { recursive: true, mode: 0o700 });
  const entry = agentBundle();
  if (!existsSync(AGENT_CONFIG)) {
    const { code } = (await api("/api/agents/pairing-codes", apiToken, { name: "local" })) as { code: string };
    execFileSync(process.execPath, [entry, "pair", base, code, "--name", "local", "--config", AGENT_CONFIG], {
      cwd: ROOT,
      env,
      stdio: "inherit",
    });
  }
  const agent = start(
    "agent",
    [
      ...NODE_FLAGS,
      entry,
      "connect",
      "--config",
      AGENT_CONFIG,
      "--server",
      base,
      "--workspace",
      `default=${workspace}`,
      ...(flags["allow-shell"] ? ["--allow-shell"] : []),
    ],
    AGENT_ENV,
    // Exit code 3: the saved token is unknown here (e.g. the local database was reset): pair again.
    mayRepair ? (code) => code === 3 : undefined,
  );
  if (mayRepair) {
    agent.on("exit", (code) => {
      if (code !== 3 || stopping) return;
      say("the local database does not know the saved agent token; pairing the local agent again");
      rmSync(AGENT_CONFIG, { force: true });
      void startLocalAgent(apiToken, workspace, false).catch((err: unknown) => {
        say(`could not re-pair the agent: ${err instanceof Error ? err.message : String(err)}`);
        void shutdown(1);
      });
    });
  }
}

async function main(): Promise<void> {
  const vars = devVars();
  const apiToken = vars.API_TOKEN ?? "";
  say("applying D1 migrations to the local database");
  execFileSync(process.execPath, [WRANGLER, "d1", "migrations", "apply", "DB", "--local", ...PERSIST], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "ignore", "inherit"],
  });
  say(`starting wrangler dev on ${base}`);
  start("wrangler dev", [...wranglerDev(port), "--show-interactive-dev-session=false", ...PERSIST]);
  await waitForHealth();

  if (!flags["no-agent"]) {
    const workspace = defaultWorkspace();
    await startLocalAgent(apiToken, workspace, true);
    say(`agent serving project "default": ${workspace}`);
  }
  if (!flags["no-telegram"]) startTelegramBridge(vars);
  const planner = vars.ANTHROPIC_API_KEY ? "Anthropic" : "offline rule";
  say(`ready: ${base} (API token: API_TOKEN in .dev.vars), ${planner} planner`);
  const urlPrefix = port === 8787 ? "" : `SKYNET_URL=${base} `;
  say(`try:  ${urlPrefix}npx skynet task "check git status" --follow`);
}

/** The bridge needs both the bot token and the webhook secret; without them SKYNET runs on. */
function startTelegramBridge(vars: Record<string, string>): void {
  if (!vars.TELEGRAM_BOT_TOKEN) return;
  if (!vars.TELEGRAM_WEBHOOK_SECRET) {
    say(
      "TELEGRAM_BOT_TOKEN is set but TELEGRAM_WEBHOOK_SECRET is not: running without the Telegram bridge. " +
        "Add TELEGRAM_WEBHOOK_SECRET=<letters, digits, _ or -> (and TELEGRAM_ALLOWED_USER_IDS) to .dev.vars and restart.",
    );
    return;
  }
  say("starting the Telegram long-poll bridge");
  // The bridge is optional: if it stops (a wrong bot token, no network), the rest keeps running.
  start(
    "telegram bridge",
    [join(ROOT, "scripts/telegram-poll.ts"), "--webhook", `${base}/telegram/webhook`],
    {},
    () => {
      say("the Telegram bridge stopped; SKYNET keeps running without it (fix .dev.vars and restart for Telegram)");
      return true;
    },
  );
}

main().catch((err: unknown) => {
  console.error(`[skynet] ${err instanceof Error ? err.message : String(err)}`);
  void shutdown(1);
});
