// Containment of a step's process tree. On Linux each step runs as the child of a tiny shell
// "init" in its own PID namespace (`unshare --pid --fork --kill-child`): when that init dies,
// the kernel kills every process in the namespace, including descendants that called setsid()
// and left the step's process group. Killing the `unshare` process (SIGKILL to the step's
// group) kills the init through --kill-child, so cancel reaches everything.
//
// The step also never outlives the agent: its stdin is a pipe whose write end only the agent
// holds. A watchdog in the init blocks reading it; when the agent dies (even by SIGKILL) the
// kernel closes the pipe, the read returns, and the watchdog kills the step.
//
// Without unshare (macOS, a kernel without unprivileged user namespaces) the fallback is the
// process group plus the same watchdog; a descendant that calls setsid() can then escape.
import { execFile } from "node:child_process";
import { access, constants } from "node:fs/promises";
import { delimiter, isAbsolute, join, resolve } from "node:path";

export type ContainmentMode = "pid-namespace" | "process-group";

export interface Containment {
  mode: ContainmentMode;
  /** The unshare flags in use (pid-namespace only). */
  prefix: string[];
  /** One line for the startup log and `skynet-agent doctor`. */
  detail: string;
}

// The init of a contained step. fd 0 is the agent's pipe (moved to fd 3 for the watchdog); the
// command gets /dev/null. The watchdog does not hold the output pipes, so they close with the step. SIGTERM is passed to every process in the namespace (kill -1 there
// reaches only the namespace), so even a setsid() descendant gets its chance to exit cleanly.
const NS_INIT = [
  "exec 3<&0 0</dev/null",
  "trap 'kill -TERM -1 2>/dev/null' TERM INT HUP",
  // The watchdog ignores the TERM it sends around, so it is still there if the agent dies later.
  "{ trap '' TERM INT HUP; read -r _ <&3; kill -KILL -1; } >/dev/null 2>&1 &",
  '"$@" 3<&- &',
  "c=$!",
  "exec 3<&-",
  'while :; do wait "$c"; s=$?; kill -0 "$c" 2>/dev/null || exit "$s"; done',
].join("\n");

// The fallback: the same shape in a process group. The shell stays alive on TERM (its group
// gets the signal from the agent anyway) and its watchdog kills the group when the agent dies.
const PG_INIT = [
  "exec 3<&0 0</dev/null",
  "trap : TERM INT HUP",
  "{ trap '' TERM INT HUP; read -r _ <&3; kill -KILL 0; } >/dev/null 2>&1 &",
  '"$@" 3<&- &',
  "c=$!",
  "exec 3<&-",
  'while :; do wait "$c"; s=$?; kill -0 "$c" 2>/dev/null || exit "$s"; done',
].join("\n");

const CANDIDATES: string[][] = [
  // As root: a PID namespace and its own /proc (so `ps` in a step sees only the step).
  ["--pid", "--fork", "--kill-child", "--mount-proc"],
  ["--pid", "--fork", "--kill-child"],
  // Unprivileged: inside a user namespace, mapped to the same uid where util-linux can.
  ["--user", "--map-current-user", "--pid", "--fork", "--kill-child", "--mount-proc"],
  ["--user", "--map-root-user", "--pid", "--fork", "--kill-child", "--mount-proc"],
  ["--user", "--map-root-user", "--pid", "--fork", "--kill-child"],
];

/** True when `unshare <flags>` really starts a process as pid 1 of a new namespace. */
function works(flags: string[]): Promise<boolean> {
  return new Promise((done) => {
    execFile(
      "unshare",
      [...flags, "sh", "-c", 'test "$$" -eq 1 && echo contained'],
      { timeout: 5_000, env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } },
      (err, stdout) => done(!err && String(stdout).trim() === "contained"),
    );
  });
}

let probed: Promise<Containment> | undefined;

/** How steps are contained on this machine (probed once). */
export function containment(): Promise<Containment> {
  probed ??= (async (): Promise<Containment> => {
    if (process.platform === "linux" && process.env.SKYNET_AGENT_NO_CONTAINMENT !== "1") {
      for (const flags of CANDIDATES) {
        if (await works(flags)) {
          return {
            mode: "pid-namespace",
            prefix: flags,
            detail: `steps run in their own PID namespace (unshare ${flags.join(" ")}); cancel and agent death kill every descendant`,
          };
        }
      }
    }
    return {
      mode: "process-group",
      prefix: [],
      detail:
        process.platform === "linux"
          ? "PID namespaces are unavailable (unshare missing or user namespaces disabled): steps run in a process group; a descendant that calls setsid() can outlive a cancel"
          : `no PID namespaces on ${process.platform}: steps run in a process group; a descendant that calls setsid() can outlive a cancel`,
    };
  })();
  return probed;
}

/** The argv that runs `argv` contained, with the agent-death watchdog on stdin. */
export function containedArgv(c: Containment, argv: string[]): string[] {
  if (c.mode === "pid-namespace") return ["unshare", ...c.prefix, "sh", "-c", NS_INIT, "skynet-step", ...argv];
  return ["sh", "-c", PG_INIT, "skynet-step", ...argv];
}

/** Resolves a command like the shell would, so "not found" is reported without starting anything. */
export async function resolveCommand(cmd: string, cwd: string, path = process.env.PATH ?? ""): Promise<string | null> {
  const executable = (p: string) =>
    access(p, constants.X_OK).then(
      () => true,
      () => false,
    );
  if (cmd.includes("/")) {
    const full = isAbsolute(cmd) ? cmd : resolve(cwd, cmd);
    return (await executable(full)) ? full : null;
  }
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const full = join(resolve(cwd, dir), cmd);
    if (await executable(full)) return full;
  }
  return null;
}
