// The service files `skynet-agent service install` writes, rendered by pure functions: a systemd
// user unit (Linux) and a launchd agent plist (macOS). Neither holds the token: `connect --config
// <file>` reads it from the agent's config file.
import { homedir } from "node:os";
import { join } from "node:path";

export const SERVICE_NAME = "skynet-agent";
export const LAUNCHD_LABEL = "dev.skynet.agent";
/** The heap flags of the bin's shebang: the service runs node directly. */
export const NODE_FLAGS = ["--max-old-space-size=256", "--max-semi-space-size=2"];
/**
 * The environment of the bin's shebang, for the same reason. glibc's malloc serves a block over
 * its mmap threshold with its own mapping, returned on free; but after the first such free it
 * raises the threshold to that size, so a streaming log's 1 MiB socket buffers come from the heap
 * arena and what they free stays resident. A fixed threshold keeps returning them (bench, 100 MB
 * logs: agent peak RSS 101–104 → 96 MB). Other C libraries ignore it.
 */
export const AGENT_ENV = { MALLOC_MMAP_THRESHOLD_: "131072" } as const;

export interface ServiceSpec {
  /** Absolute path of the node binary. */
  node: string;
  /** Absolute path of the agent's entry (bin/skynet-agent.js). */
  entry: string;
  /** Arguments after the entry: connect and its flags (never the token). */
  args: string[];
  drainTimeoutS: number;
  /** launchd only: where stdout and stderr go. */
  logFile?: string;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

function checkArgs(spec: ServiceSpec): string[] {
  const argv = [spec.node, ...NODE_FLAGS, spec.entry, ...spec.args];
  for (const a of argv)
    if (CONTROL.test(a)) throw new Error(`a service argument may not contain control characters: ${JSON.stringify(a)}`);
  if (!spec.node.startsWith("/") || !spec.entry.startsWith("/"))
    throw new Error("node and entry must be absolute paths");
  return argv;
}

/** One ExecStart word: specifiers (%) and variables ($) are escaped, quoted when needed. */
export function systemdQuote(arg: string): string {
  const escaped = arg.replaceAll("%", "%%").replaceAll("$", "$$$$");
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped)) return escaped;
  return `"${escaped.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

export function renderSystemdUnit(spec: ServiceSpec): string {
  const argv = checkArgs(spec);
  return `# Written by \`skynet-agent service install\`; remove with \`skynet-agent service uninstall\`.
[Unit]
Description=SKYNET agent (CHATHAN): runs SKYNET jobs in this user's workspaces
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
${Object.entries(AGENT_ENV)
  .map(([k, v]) => `Environment=${k}=${v}`)
  .join("\n")}
ExecStart=${argv.map(systemdQuote).join(" ")}
Restart=on-failure
RestartSec=5
# 2 usage, 3 token refused, 4 replaced by another process, 5 upgrade the agent: restarting cannot help.
RestartPreventExitStatus=2 3 4 5
# SIGTERM to the agent alone, so running steps can finish while it drains; the rest is killed after the timeout.
KillMode=mixed
TimeoutStopSec=${spec.drainTimeoutS + 30}

[Install]
WantedBy=default.target
`;
}

function xml(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
}

export function renderLaunchdPlist(spec: ServiceSpec): string {
  const argv = checkArgs(spec);
  const log = spec.logFile ?? join(homedir(), "Library", "Logs", `${SERVICE_NAME}.log`);
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>${LAUNCHD_LABEL}</string>
  <key>ProgramArguments</key>
  <array>
${argv.map((a) => `    <string>${xml(a)}</string>`).join("\n")}
  </array>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <dict>
    <key>SuccessfulExit</key>
    <false/>
  </dict>
  <key>ThrottleInterval</key>
  <integer>5</integer>
  <key>ExitTimeOut</key>
  <integer>${spec.drainTimeoutS + 30}</integer>
  <key>StandardOutPath</key>
  <string>${xml(log)}</string>
  <key>StandardErrorPath</key>
  <string>${xml(log)}</string>
</dict>
</plist>
`;
}

export function servicePaths(platform = process.platform, home = homedir()): { file: string; kind: string } {
  return platform === "darwin"
    ? { file: join(home, "Library", "LaunchAgents", `${LAUNCHD_LABEL}.plist`), kind: "launchd agent" }
    : { file: join(home, ".config", "systemd", "user", `${SERVICE_NAME}.service`), kind: "systemd user unit" };
}
