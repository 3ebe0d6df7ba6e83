// `skynet-agent doctor` (is this machine ready to run jobs?) and `skynet-agent status` (this
// agent as the server sees it, through GET /agent/me with the agent token).
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_CONFIG_PATH, parseWorkspaces, readStoredConfig } from "./config.ts";
import {
  type Check,
  configCheck,
  containmentCheck,
  renderCheck,
  serverChecks,
  toolChecks,
  workspaceChecks,
} from "./doctor-checks.ts";
import { EXIT } from "./usage.ts";

export async function doctor(args: string[], help: string): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: "string" },
      workspace: { type: "string", multiple: true, default: [] },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return void console.log(help);
  const path = resolve(values.config ?? DEFAULT_CONFIG_PATH);
  const checks: Check[] = [{ level: "OK", name: "node", detail: process.version }];
  const { check, config } = await configCheck(path);
  checks.push(check);
  checks.push(...(await toolChecks()));
  checks.push(...(await workspaceChecks(parseWorkspaces(values.workspace))));
  if (config) checks.push(...(await serverChecks(config)).checks);
  checks.push(await containmentCheck());
  for (const c of checks) console.log(renderCheck(c));
  const failed = checks.filter((c) => c.level === "FAIL").length;
  const warned = checks.filter((c) => c.level === "WARN").length;
  console.log(failed ? `\n${failed} check(s) failed` : `\nready${warned ? ` (${warned} warning(s))` : ""}`);
  if (failed) process.exitCode = EXIT.error;
}

export async function status(args: string[], help: string): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { config: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) return void console.log(help);
  const path = values.config ?? DEFAULT_CONFIG_PATH;
  const stored = await readStoredConfig(path);
  if (!stored) {
    console.log(`not paired: no config at ${path}`);
    process.exitCode = EXIT.error;
    return;
  }
  console.log(
    `config:  ${path}\nserver:  ${stored.serverUrl}\nagent:   ${stored.agentId ?? "?"} (${stored.name ?? "?"})`,
  );
  const { checks, self } = await serverChecks(stored);
  if (!self) {
    for (const c of checks.filter((c) => c.level !== "OK")) console.log(renderCheck(c));
    process.exitCode = EXIT.error;
    return;
  }
  const state = self.connected
    ? self.draining
      ? "connected, draining (taking no new jobs)"
      : "connected"
    : "not connected";
  console.log(`state:   ${state}`);
  console.log(`last heartbeat: ${self.lastHeartbeatAt ?? "none on this connection"}`);
  console.log(
    `jobs:    ${self.jobs.length === 0 ? "none" : self.jobs.map((j) => `${j.jobId} (attempt ${j.attempt}, ${j.state})`).join(", ")}`,
  );
}
