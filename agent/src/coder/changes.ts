// What the coding agent changed: `git status --porcelain` before and after (hardened git,
// read-only), and the diff of the tracked changes (secret files excluded) offered as an artifact.
import { execFile } from "node:child_process";
import { hardenedGit } from "../git-safety.ts";
import { type PathPolicy, secretPathspecs } from "../secrets.ts";

const MAX_DIFF_BYTES = 2 * 1024 * 1024;

async function gitOut(workspace: string, args: string[]): Promise<Buffer | null> {
  const { argv, env } = await hardenedGit(workspace, args, true);
  const [cmd, ...rest] = argv as [string, ...string[]];
  return new Promise((done) => {
    execFile(
      cmd,
      rest,
      { cwd: workspace, env, timeout: 20_000, encoding: "buffer", maxBuffer: MAX_DIFF_BYTES * 2 },
      (e, stdout) => done(e ? null : stdout),
    );
  });
}

/** path → porcelain status ("M", "??", …); empty when the workspace is not a git repository. */
export async function changedFiles(workspace: string): Promise<Map<string, string>> {
  const out = await gitOut(workspace, ["status", "--porcelain=v1", "-z", "--untracked-files=all"]);
  const files = new Map<string, string>();
  if (!out) return files;
  const entries = out.toString("utf8").split("\0");
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] ?? "";
    if (e.length < 4) continue;
    const status = e.slice(0, 2).trim();
    files.set(e.slice(3), status);
    // A rename's source path follows as its own entry.
    if (status.startsWith("R") || status.startsWith("C")) i += 1;
  }
  return files;
}

/** The working tree's diff against HEAD (untracked files are listed, not shown), bounded. */
export async function workspaceDiff(workspace: string, policy?: PathPolicy): Promise<Buffer | undefined> {
  const out = await gitOut(workspace, [
    "diff",
    "--no-ext-diff",
    "--no-textconv",
    "HEAD",
    "--",
    ".",
    ...secretPathspecs(policy),
  ]);
  if (!out || out.length === 0) return undefined;
  return out.length > MAX_DIFF_BYTES
    ? Buffer.concat([out.subarray(0, MAX_DIFF_BYTES), Buffer.from("\n[diff cut at 2 MiB]\n")])
    : out;
}
