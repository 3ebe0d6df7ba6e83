// `skynet-agent service install|uninstall|status|logs`: `connect` as a systemd user service
// (Linux) or a launchd agent (macOS), files rendered by service-files.ts; where neither service
// manager can be used, install says so and prints how to run the agent instead.
import { execFile } from "node:child_process";
import { realpathSync } from "node:fs";
import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_CONFIG_PATH, parseWorkspaces, readStoredConfig } from "./config.ts";
import { LOG_FORMATS, type LogFormat } from "./logger.ts";
import {
  AGENT_ENV,
  LAUNCHD_LABEL,
  NODE_FLAGS,
  renderLaunchdPlist,
  renderSystemdUnit,
  SERVICE_NAME,
  type ServiceSpec,
  servicePaths,
} from "./service-files.ts";
import { EXIT, fail } from "./usage.ts";

export const SERVICE_HELP = `usage: skynet-agent service install|uninstall|status|logs [options]

install   writes and starts a service running \`skynet-agent connect\`, restarted on failure:
          Linux: a systemd user unit ~/.config/systemd/user/${SERVICE_NAME}.service
          macOS: a launchd agent ~/Library/LaunchAgents/${LAUNCHD_LABEL}.plist
          The token stays in the config file (pair first); it is never on the command line.
  --workspace <projectId>=<dir>  as for connect (repeatable, required)
  --config PATH                  the agent's config file (default ${DEFAULT_CONFIG_PATH})
  --allow-shell, --max-concurrency N, --drain-timeout-s S, --log-format text|json: as for connect
  --dry-run                      print what would be written and run, change nothing
uninstall stops the service and removes the file
status    the service manager's view of it
logs      its log lines (-f to follow, -n N lines)

Install the package first (npm install -g skynet-agent): a service must not point into npx's cache.
Without a service manager (no systemctl or no user session bus) install says how to run it instead.`;

interface Run {
  code: number;
  out: string;
}

function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((done) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 127) : 0;
      done({ code, out: `${stdout}${stderr}`.trim() });
    });
  });
}

/** Null when systemd's user manager can be used; otherwise why not. */
async function systemdUnavailable(): Promise<string | null> {
  const r = await run("systemctl", ["--user", "show-environment"]);
  if (r.code === 127) return "systemctl was not found";
  if (r.code !== 0) return `systemd's user manager does not answer (${r.out.split("\n")[0] || `exit ${r.code}`})`;
  return null;
}

async function install(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      workspace: { type: "string", multiple: true, default: [] },
      config: { type: "string" },
      "allow-shell": { type: "boolean", default: false },
      "max-concurrency": { type: "string" },
      "drain-timeout-s": { type: "string" },
      "log-format": { type: "string" },
      "dry-run": { type: "boolean", default: false },
    },
  });
  const workspaces = parseWorkspaces(values.workspace);
  if (Object.keys(workspaces).length === 0)
    fail("service install needs at least one --workspace <projectId>=<dir>", SERVICE_HELP);
  for (const [id, dir] of Object.entries(workspaces)) {
    if (!(await stat(dir).catch(() => null))?.isDirectory()) fail(`workspace ${id}: ${dir} is not a directory`);
  }
  const configPath = resolve(values.config ?? DEFAULT_CONFIG_PATH);
  if (!(await readStoredConfig(configPath)))
    fail(`no config at ${configPath}: run skynet-agent pair <serverUrl> <code> first`);
  const drainTimeoutS = Number(values["drain-timeout-s"] ?? 300);
  if (!Number.isInteger(drainTimeoutS) || drainTimeoutS < 0 || drainTimeoutS > 86_400)
    fail("--drain-timeout-s must be 0 to 86400");
  // Checked now: a bad flag would only show as a service that exits 2 at every start.
  const logFormat = values["log-format"];
  if (logFormat !== undefined && !LOG_FORMATS.includes(logFormat as LogFormat))
    fail("--log-format must be text or json");
  const concurrency = values["max-concurrency"];
  if (concurrency !== undefined && !/^([1-9]|1[0-6])$/.test(concurrency)) fail("--max-concurrency must be 1 to 16");
  const connectArgs = [
    "connect",
    "--config",
    configPath,
    ...Object.entries(workspaces).flatMap(([id, dir]) => ["--workspace", `${id}=${dir}`]),
    "--drain-timeout-s",
    String(drainTimeoutS),
    ...(values["allow-shell"] ? ["--allow-shell"] : []),
    ...(concurrency ? ["--max-concurrency", concurrency] : []),
    ...(logFormat ? ["--log-format", logFormat] : []),
  ];
  const spec: ServiceSpec = {
    node: process.execPath,
    entry: realpathSync(process.argv[1] ?? ""),
    args: connectArgs,
    drainTimeoutS,
  };
  const { file, kind } = servicePaths();
  const text = process.platform === "darwin" ? renderLaunchdPlist(spec) : renderSystemdUnit(spec);
  if (spec.entry.includes("/_npx/")) {
    console.log(
      "warning: this skynet-agent runs from npx's cache, which npm may clear; install it with npm install -g skynet-agent",
    );
  }
  const enable =
    process.platform === "darwin"
      ? [["launchctl", "bootstrap", `gui/${process.getuid?.() ?? 0}`, file]]
      : [
          ["systemctl", "--user", "daemon-reload"],
          ["systemctl", "--user", "enable", "--now", `${SERVICE_NAME}.service`],
        ];
  const runInstead = `instead, run it in a terminal (or your own supervisor):\n  ${[...Object.entries(AGENT_ENV).map(([k, v]) => `${k}=${v}`), spec.node, ...NODE_FLAGS, spec.entry, ...spec.args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(" ")}`;
  if (values["dry-run"]) {
    console.log(
      `would write ${kind} ${file}:\n\n${text}\nwould run:\n${enable.map((c) => `  ${c.join(" ")}`).join("\n")}`,
    );
    return;
  }
  if (process.platform !== "darwin" && process.platform !== "linux") {
    console.log(`no service manager supported on ${process.platform}; ${runInstead}`);
    process.exitCode = EXIT.error;
    return;
  }
  const missing = process.platform === "linux" ? await systemdUnavailable() : null;
  if (missing) {
    console.log(`cannot install a ${kind}: ${missing}. Nothing was written.\n${runInstead}`);
    process.exitCode = EXIT.error;
    return;
  }
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, text, { mode: 0o644 });
  console.log(`wrote ${file}`);
  for (const cmd of enable) {
    const r = await run(cmd[0] as string, cmd.slice(1));
    console.log(`ran: ${cmd.join(" ")}${r.code === 0 ? "" : ` (failed, exit ${r.code}: ${r.out})`}`);
    if (r.code !== 0) {
      process.exitCode = EXIT.error;
      return;
    }
  }
  console.log("installed: `skynet-agent service status` and `skynet-agent service logs` show it");
  if (process.platform === "linux") {
    console.log("to keep it running while you are logged out: loginctl enable-linger $USER");
  }
}

async function uninstall(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { "dry-run": { type: "boolean", default: false } } });
  const { file, kind } = servicePaths();
  const cmds =
    process.platform === "darwin"
      ? [["launchctl", "bootout", `gui/${process.getuid?.() ?? 0}`, file]]
      : [["systemctl", "--user", "disable", "--now", `${SERVICE_NAME}.service`]];
  if (values["dry-run"]) {
    console.log(`would run:\n${cmds.map((c) => `  ${c.join(" ")}`).join("\n")}\nwould remove ${kind} ${file}`);
    return;
  }
  for (const cmd of cmds) {
    const r = await run(cmd[0] as string, cmd.slice(1));
    console.log(`ran: ${cmd.join(" ")}${r.code === 0 ? "" : ` (exit ${r.code}: ${r.out.split("\n")[0] ?? ""})`}`);
  }
  const existed = await stat(file).then(
    () => true,
    () => false,
  );
  await rm(file, { force: true });
  console.log(existed ? `removed ${file}` : `no ${kind} at ${file}`);
  if (process.platform === "linux") await run("systemctl", ["--user", "daemon-reload"]);
}

async function passthrough(cmd: string, args: string[]): Promise<void> {
  const { spawn } = await import("node:child_process");
  await new Promise<void>((done) => {
    const child = spawn(cmd, args, { stdio: "inherit" });
    child.on("error", (err) => {
      console.log(`${cmd}: ${err.message}`);
      process.exitCode = EXIT.error;
      done();
    });
    child.on("exit", (code) => {
      if (code) process.exitCode = code;
      done();
    });
  });
}

export async function service(argv: string[]): Promise<void> {
  const [sub, ...args] = argv;
  const mac = process.platform === "darwin";
  switch (sub) {
    case "install":
      return install(args);
    case "uninstall":
      return uninstall(args);
    case "status":
      return mac
        ? passthrough("launchctl", ["print", `gui/${process.getuid?.() ?? 0}/${LAUNCHD_LABEL}`])
        : passthrough("systemctl", ["--user", "status", "--no-pager", `${SERVICE_NAME}.service`]);
    case "logs": {
      const { values } = parseArgs({
        args,
        options: { follow: { type: "boolean", short: "f", default: false }, lines: { type: "string", short: "n" } },
      });
      const n = String(Number(values.lines ?? 200) || 200);
      if (mac) {
        const log = join(homedir(), "Library", "Logs", `${SERVICE_NAME}.log`);
        return passthrough("tail", ["-n", n, ...(values.follow ? ["-f"] : []), log]);
      }
      return passthrough("journalctl", [
        "--user",
        "-u",
        `${SERVICE_NAME}.service`,
        "-n",
        n,
        "--no-pager",
        ...(values.follow ? ["-f"] : []),
      ]);
    }
    case undefined:
    case "--help":
    case "-h":
      console.log(SERVICE_HELP);
      return;
    default:
      fail(`unknown service command "${sub}"`, SERVICE_HELP);
  }
}
