// The checks behind `skynet-agent doctor` and `status`: tools, workspaces, the config file, the
// server (reachable, token accepted through GET /agent/me, clock skew) and process containment.
// Each gives OK, WARN or FAIL, with the fix for anything that is not OK.
import { execFile } from "node:child_process";
import { access, constants, stat } from "node:fs/promises";
import { type AgentSelf, AgentSelfSchema } from "../../protocol/index.ts";
import { readStoredConfig, type StoredConfig } from "./config.ts";
import { containment } from "./contain.ts";

export type CheckLevel = "OK" | "WARN" | "FAIL";
export interface Check {
  level: CheckLevel;
  name: string;
  detail: string;
  /** What to do about it (WARN and FAIL). */
  fix?: string;
}

/** Runners the catalog's actions may call, and how each tells its version. */
const RUNNERS: readonly [string, string[]][] = [
  ["npm", ["--version"]],
  ["pnpm", ["--version"]],
  ["yarn", ["--version"]],
  ["pytest", ["--version"]],
  ["go", ["version"]],
  ["cargo", ["--version"]],
  ["make", ["--version"]],
];

/** First line of `cmd args`' output, or null when the command is absent or fails. */
function version(cmd: string, args: string[], cwd?: string): Promise<string | null> {
  return new Promise((done) => {
    execFile(cmd, args, { timeout: 10_000, cwd }, (err, stdout, stderr) => {
      if (err) return done(null);
      done((`${stdout}`.trim() || `${stderr}`.trim()).split("\n")[0]?.slice(0, 120) ?? "");
    });
  });
}

export function renderCheck(c: Check): string {
  return `${c.level.padEnd(4)} ${c.name}: ${c.detail}${c.fix ? `\n     fix: ${c.fix}` : ""}`;
}

export async function toolChecks(): Promise<Check[]> {
  const out: Check[] = [];
  const git = await version("git", ["--version"]);
  out.push(
    git
      ? { level: "OK", name: "git", detail: git }
      : { level: "FAIL", name: "git", detail: "not found on PATH", fix: "install git (every job uses it)" },
  );
  for (const [cmd, args] of RUNNERS) {
    const v = await version(cmd, args);
    out.push(
      v
        ? { level: "OK", name: cmd, detail: v }
        : { level: "WARN", name: cmd, detail: "not found on PATH", fix: `install ${cmd} if your projects use it` },
    );
  }
  return out;
}

export async function workspaceChecks(workspaces: Record<string, string>): Promise<Check[]> {
  const ids = Object.keys(workspaces);
  if (ids.length === 0) {
    return [
      {
        level: "WARN",
        name: "workspaces",
        detail: "none given, so none checked",
        fix: "run doctor with the --workspace <projectId>=<dir> flags you give connect",
      },
    ];
  }
  const out: Check[] = [];
  for (const id of ids) {
    const dir = workspaces[id] as string;
    const name = `workspace ${id}`;
    const st = await stat(dir).catch(() => null);
    if (!st?.isDirectory()) {
      out.push({
        level: "FAIL",
        name,
        detail: `${dir} is not a directory`,
        fix: "create it or fix the --workspace path",
      });
      continue;
    }
    if (
      !(await access(dir, constants.W_OK).then(
        () => true,
        () => false,
      ))
    ) {
      out.push({ level: "FAIL", name, detail: `${dir} is not writable`, fix: `give this user write access to ${dir}` });
      continue;
    }
    const top = await version("git", ["rev-parse", "--show-toplevel"], dir);
    out.push(
      top
        ? { level: "OK", name, detail: `${dir} (git repository at ${top})` }
        : { level: "WARN", name, detail: `${dir} is not a git repository`, fix: `git -C ${dir} init` },
    );
  }
  return out;
}

interface ServerView {
  checks: Check[];
  self: AgentSelf | null;
}

/** Reachability, token, clock skew: two requests (GET /health, GET /agent/me). */
export async function serverChecks(config: StoredConfig): Promise<ServerView> {
  const checks: Check[] = [];
  const base = config.serverUrl;
  let res: Response;
  const sent = Date.now();
  try {
    res = await fetch(`${base}/health`, { signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    const why = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
    checks.push({
      level: "FAIL",
      name: "server",
      detail: `${base} unreachable (${why})`,
      fix: "check the URL in the config file (pair again to change it) and that the Worker is running",
    });
    return { checks, self: null };
  }
  const received = Date.now();
  await res.body?.cancel();
  checks.push({ level: "OK", name: "server", detail: `${base} answers (/health ${res.status})` });
  const meSent = Date.now();
  const me = await fetch(`${base}/agent/me`, {
    headers: { Authorization: `Bearer ${config.token}` },
    signal: AbortSignal.timeout(10_000),
  }).catch(() => null);
  const meReceived = Date.now();
  const body: unknown = await me?.json().catch(() => null);
  const parsed = AgentSelfSchema.safeParse(body);
  const self = me?.status === 200 && parsed.success ? parsed.data : null;
  if (me?.status === 401) {
    checks.push({
      level: "FAIL",
      name: "token",
      detail: "refused by the server (unknown or revoked)",
      fix: "get a new pairing code (/pair in Telegram) and run skynet-agent pair <serverUrl> <code>",
    });
  } else if (!self) {
    checks.push({
      level: "WARN",
      name: "token",
      detail: `not checked: GET /agent/me answered ${me ? me.status : "nothing"} (a server older than this agent?)`,
    });
  } else {
    checks.push({ level: "OK", name: "token", detail: `accepted: agent ${self.agentId} (${self.name})` });
  }
  // The server's own time: /agent/me's serverTime (ms) or else the Date header (whole seconds).
  const serverTime = Date.parse(self?.serverTime ?? "");
  const clock = Number.isNaN(serverTime)
    ? { at: Date.parse(res.headers.get("Date") ?? ""), sent, received, resolutionMs: 1000 }
    : { at: serverTime, sent: meSent, received: meReceived, resolutionMs: 0 };
  checks.push(clockCheck(clock));
  return { checks, self };
}

/** Skew beyond the round trip and the time source's resolution, with a 5 s floor. */
export function clockCheck(c: { at: number; sent: number; received: number; resolutionMs: number }): Check {
  if (Number.isNaN(c.at)) return { level: "WARN", name: "clock", detail: "the server sent no time: skew unknown" };
  const skewMs = (c.sent + c.received) / 2 - c.at;
  const slackMs = Math.max(5000, c.received - c.sent + c.resolutionMs);
  if (Math.abs(skewMs) <= slackMs)
    return { level: "OK", name: "clock", detail: `within ${Math.round(slackMs / 1000)}s of the server's` };
  return {
    level: "WARN",
    name: "clock",
    detail: `${Math.round(Math.abs(skewMs) / 1000)}s ${skewMs > 0 ? "ahead of" : "behind"} the server (log times will disagree)`,
    fix: "enable time sync (Linux: timedatectl set-ntp true; macOS: Date & Time › Set automatically)",
  };
}

export async function containmentCheck(): Promise<Check> {
  const c = await containment();
  return c.mode === "pid-namespace"
    ? { level: "OK", name: "containment", detail: c.detail }
    : {
        level: "WARN",
        name: "containment",
        detail: c.detail,
        fix:
          process.platform === "linux"
            ? "install util-linux's unshare and allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)"
            : "none on this platform: a step that calls setsid() can outlive a cancel",
      };
}

export async function configCheck(path: string): Promise<{ check: Check; config: StoredConfig | null }> {
  let config: StoredConfig | null;
  try {
    config = await readStoredConfig(path);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    return {
      check: { level: "FAIL", name: "config", detail, fix: "pair again: skynet-agent pair <serverUrl> <code>" },
      config: null,
    };
  }
  if (!config) {
    return {
      check: {
        level: "FAIL",
        name: "config",
        detail: `no config at ${path}`,
        fix: "skynet-agent pair <serverUrl> <code> (a code from /pair in Telegram or the API)",
      },
      config: null,
    };
  }
  const mode = (await stat(path)).mode & 0o777;
  if (mode & 0o077) {
    return {
      check: {
        level: "WARN",
        name: "config",
        detail: `${path} holds the token but is readable by others (mode ${mode.toString(8)})`,
        fix: `chmod 600 ${path}`,
      },
      config,
    };
  }
  return { check: { level: "OK", name: "config", detail: `${path} (mode 600)` }, config };
}
