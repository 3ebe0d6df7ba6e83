// Every git command the agent runs goes through here. A repository's own config (.git/config and
// what it includes) and its .gitattributes are workspace-controlled, and git has many settings
// through which they can make git run a program: a READ_ONLY `git status` must never run one.
// Each such setting is overridden on git's command line (`-c`, which wins over every file), or
// through the environment, or the command is refused when there is no neutral value.
//
// Trust: the user's global config (~/.gitconfig, ~/.config/git/config) is their own file, not
// the workspace's, and no action may write it (protectedFiles in secrets.ts), so a program it names
// (their credential helper, ssh command, gpg, git-lfs filters) is kept. System config is off
// (GIT_CONFIG_NOSYSTEM). Anything the repository sets is replaced by the global value or a
// neutral one.
import { execFile } from "node:child_process";
import { realpath } from "node:fs/promises";
import { isAbsolute, relative, resolve } from "node:path";
import { scrubbedEnv } from "./sandbox.ts";

export class GitSafetyError extends Error {}

type Entry = { scope: string; key: string; value: string };

// The settings read from the repository before each git command (matched against git's canonical
// names: section and key lower-cased, subsection as written).
const DANGEROUS =
  "^(core\\.(fsmonitor|sshcommand|askpass|gitproxy|alternaterefscommand)" +
  "|credential\\..*helper" + // credential helpers are programs (`!cmd` is a shell command)
  "|gpg\\..*program|gpg\\.ssh\\.defaultkeycommand" + // signing and verification programs
  "|(commit|tag|push)\\.gpgsign" + // signing on commit runs gpg.program
  "|filter\\..*\\.(clean|smudge|process))$"; // filter drivers named by .gitattributes
// remote.<name>.receivepack / uploadpack (run locally for local remotes) cannot be overridden
// with -c (git keeps the first value it reads): `git push` gets --receive-pack instead, and the
// agent never fetches.

/** Settings with a fixed neutral value, unless the user's global config sets them. */
const NEUTRAL: Record<string, string> = {
  // fsmonitor: a hook command run by status/diff/add (the issue-12 attack).
  "core.fsmonitor": "false",
  // ssh and askpass programs: the defaults, or nothing (prompts are off: GIT_TERMINAL_PROMPT=0).
  "core.sshcommand": "ssh",
  "core.askpass": "",
  // Run by fetch/push when the repository has alternates: nothing.
  "core.alternaterefscommand": "",
  // Signing: gpg/ssh-keygen from PATH, never a repository's choice of program.
  "gpg.program": "gpg",
  "gpg.openpgp.program": "gpg",
  "gpg.x509.program": "gpgsm",
  "gpg.ssh.program": "ssh-keygen",
  "gpg.ssh.defaultkeycommand": "",
  // A repository cannot turn signing on (and so fail every commit); the user's own setting stays.
  "commit.gpgsign": "false",
  "tag.gpgsign": "false",
  "push.gpgsign": "false",
};

/** Always on the command line, whatever any config says. */
const FIXED = [
  // Pager and editors: git never pages into a pipe, but a config's pager.<cmd> or editor must
  // not matter either (the env below also sets GIT_PAGER/GIT_EDITOR).
  "core.pager=cat",
  "core.editor=:",
  "sequence.editor=:",
  // External diff drivers (also --no-ext-diff / --no-textconv on diff and log).
  "diff.external=",
  // Verifying signatures in `git log` would run gpg.program.
  "log.showSignature=false",
  // Transports: ext:: runs an arbitrary command and unknown transports run git-remote-<name>
  // helpers; only the usual ones are allowed, whatever the repository's protocol.* says.
  "protocol.allow=never",
  "protocol.file.allow=always",
  "protocol.git.allow=always",
  "protocol.http.allow=always",
  "protocol.https.allow=always",
  "protocol.ssh.allow=always",
  "protocol.ext.allow=never",
  // A workspace that is not a repository but was made to look like a bare one (HEAD, config,
  // objects/, refs/ written by a plan) is not treated as one: its "config" would be the plan's.
  // Honoured only from protected config, which includes the command line.
  "safe.bareRepository=explicit",
  // Background maintenance runs hooks (pre-auto-gc) and more git processes.
  "gc.auto=0",
  "maintenance.auto=false",
];

/** For READ_ONLY actions only: no hooks (post-index-change…), no submodule recursion. */
const READ_ONLY_FIXED = [
  "core.hooksPath=/dev/null",
  // Submodules have their own config (filters, …) that is not read here: do not descend.
  "diff.ignoreSubmodules=all",
  "status.submoduleSummary=false",
];

/** The environment for every git process: no system config, no pager, editor or prompt. */
export function gitEnv(readOnly: boolean): NodeJS.ProcessEnv {
  return {
    ...scrubbedEnv(),
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_PAGER: "cat",
    PAGER: "cat",
    GIT_EDITOR: ":",
    GIT_SEQUENCE_EDITOR: ":",
    GIT_ASKPASS: "",
    SSH_ASKPASS: "",
    GIT_TERMINAL_PROMPT: "0",
    // Protocols whose policy is "user" are refused (protocol.allow above covers the rest).
    GIT_PROTOCOL_FROM_USER: "0",
    // A read-only status must not rewrite the index (and so fire index hooks).
    ...(readOnly ? { GIT_OPTIONAL_LOCKS: "0" } : {}),
  };
}

function parseEntries(out: string): Entry[] {
  const parts = out.split("\0");
  const entries: Entry[] = [];
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const scope = parts[i] ?? "";
    const kv = parts[i + 1] ?? "";
    const nl = kv.indexOf("\n");
    entries.push({ scope, key: nl < 0 ? kv : kv.slice(0, nl), value: nl < 0 ? "true" : kv.slice(nl + 1) });
  }
  return entries;
}

/** Reads the program-running settings from every config git would use here, with their scope. */
function readDangerous(workspace: string): Promise<Entry[]> {
  return new Promise((resolve) => {
    execFile(
      "git",
      ["config", "--null", "--show-scope", "--get-regexp", DANGEROUS],
      { cwd: workspace, env: gitEnv(true), maxBuffer: 4 * 1024 * 1024, timeout: 10_000 },
      // Exit 1 means no match; 128 means no repository (the real command will say so).
      (_err, stdout) => resolve(parseEntries(String(stdout ?? ""))),
    );
  });
}

const lower = (key: string) => {
  // Section and variable names are case-insensitive; a subsection is not.
  const first = key.indexOf(".");
  const last = key.lastIndexOf(".");
  return `${key.slice(0, first).toLowerCase()}${key.slice(first, last)}${key.slice(last).toLowerCase()}`;
};

/**
 * One scan of the repository's config, started ahead of the git command it is for, so the
 * `git config` process overlaps the work before the spawn (the journal write) instead of adding
 * to it. Only that command uses it: any later one scans again, since whatever ran in between (an
 * earlier git command, an earlier step) may have written the config. Never kept across steps.
 */
export class PendingScan {
  private scan: Promise<Entry[]> | null;

  constructor(workspace: string) {
    this.scan = readDangerous(workspace);
  }

  /** The scan, once; null afterwards. */
  take(): Promise<Entry[]> | null {
    const scan = this.scan;
    this.scan = null;
    return scan;
  }
}

/** The `-c` overrides for one git command in this workspace (from `pending` if one was started
 * for this command, else from a scan made now). */
export async function gitOverrides(workspace: string, readOnly: boolean, pending?: PendingScan): Promise<string[]> {
  const entries = await (pending?.take() ?? readDangerous(workspace));
  const trusted = new Map<string, string>();
  const untrusted: Entry[] = [];
  for (const e of entries) {
    if (e.scope === "global") trusted.set(lower(e.key), e.value);
    else untrusted.push({ ...e, key: lower(e.key) });
  }
  const out: string[] = [...FIXED, ...(readOnly ? READ_ONLY_FIXED : [])];
  for (const [key, neutral] of Object.entries(NEUTRAL)) out.push(`${key}=${trusted.get(key) ?? neutral}`);
  // Credential helpers are a list: an empty value clears it (URL-specific ones too), then the
  // user's own helpers are added back in order.
  out.push("credential.helper=");
  for (const e of entries)
    if (e.scope === "global" && /^credential\..*helper$/i.test(e.key)) out.push(`${e.key}=${e.value}`);
  for (const e of untrusted) {
    const m = /^filter\.(.+)\.(clean|smudge|process)$/.exec(e.key);
    if (m) {
      out.push(`${e.key}=${trusted.get(e.key) ?? ""}`);
      // A filter neutralised here must not make git refuse the file either.
      if (!trusted.has(e.key)) out.push(`filter.${m[1]}.required=false`);
    } else if (e.key === "core.gitproxy") {
      // A list keyed by domain with no way to clear it from the command line.
      throw new GitSafetyError("refused: this repository's git config sets core.gitProxy, which runs a program");
    }
  }
  return out;
}

/** argv and environment for a hardened git command: `git --no-pager -c … <args>`. */
export async function hardenedGit(
  workspace: string,
  args: string[],
  readOnly: boolean,
  pending?: PendingScan,
): Promise<{ argv: string[]; env: NodeJS.ProcessEnv }> {
  const overrides = await gitOverrides(workspace, readOnly, pending);
  return { argv: ["git", "--no-pager", ...overrides.flatMap((o) => ["-c", o]), ...args], env: gitEnv(readOnly) };
}

/** Runs a read-only `git` query with the hardened environment and overrides; stdout, or null on failure. */
async function gitQuery(workspace: string, args: string[]): Promise<string | null> {
  const overrides = await gitOverrides(workspace, true);
  return new Promise((done) => {
    execFile(
      "git",
      ["--no-pager", ...overrides.flatMap((o) => ["-c", o]), ...args],
      { cwd: workspace, env: gitEnv(true), timeout: 10_000 },
      (err, stdout) => done(err ? null : String(stdout)),
    );
  });
}

/** The local directory a remote URL names, or null for a network URL (https, ssh, scp-like host:path). */
function localPath(url: string, workspace: string): string | null {
  if (url.startsWith("file://")) return url.slice("file://".length);
  if (/^[A-Za-z][A-Za-z0-9+.-]*::/.test(url) || /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(url)) return null;
  const colon = url.indexOf(":");
  const slash = url.indexOf("/");
  if (colon > 0 && (slash < 0 || colon < slash)) return null; // host:path is ssh
  return isAbsolute(url) ? url : resolve(workspace, url);
}

/**
 * A push goes only to a configured remote, and never to a repository inside the workspace: git
 * runs the receiving repository's hooks, and a plan can write those files there.
 */
export async function checkPushRemote(workspace: string, remote: string): Promise<void> {
  const urls = await gitQuery(workspace, ["remote", "get-url", "--push", "--all", remote]);
  if (urls === null || urls.trim() === "") {
    throw new GitSafetyError(`refused: "${remote}" is not a configured remote of this repository (see git remote -v)`);
  }
  const root = await realpath(workspace);
  for (const url of urls.split("\n").filter(Boolean)) {
    const local = localPath(url, workspace);
    if (!local) continue;
    const real = await realpath(local).catch(() => resolve(local));
    const rel = relative(root, real);
    if (rel === "" || (!rel.startsWith("..") && !isAbsolute(rel))) {
      throw new GitSafetyError(`refused: remote "${remote}" is a repository inside the workspace (${rel || "."})`);
    }
  }
}
