// Confinement: every path an action touches must stay inside the workspace after symlinks are
// resolved, and child processes get a scrubbed environment.
import { lstat, mkdir, realpath } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { RelativePathSchema, touchesGitDir } from "../../protocol/index.ts";

export class SandboxError extends Error {}

function inside(root: string, target: string): boolean {
  const rel = relative(root, target);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel));
}

/** The nearest existing ancestor of a path, resolved through symlinks. */
async function realAncestor(path: string): Promise<{ real: string; rest: string[] }> {
  const rest: string[] = [];
  let current = path;
  for (;;) {
    try {
      return { real: await realpath(current), rest };
    } catch {
      const parent = dirname(current);
      if (parent === current) throw new SandboxError(`no existing ancestor for ${path}`);
      rest.unshift(current.slice(parent.length + 1));
      current = parent;
    }
  }
}

/**
 * Resolves a workspace-relative path to an absolute one inside the workspace, or throws.
 * Existing symlinks anywhere on the path are followed before the check.
 */
export async function confine(workspace: string, relPath: string): Promise<string> {
  const parsed = RelativePathSchema.safeParse(relPath);
  if (!parsed.success) throw new SandboxError(`refused path "${relPath}": ${parsed.error.issues[0]?.message}`);
  const root = await realpath(workspace);
  const { real, rest } = await realAncestor(resolve(root, relPath));
  const target = rest.length > 0 ? join(real, ...rest) : real;
  if (!inside(root, real) || !inside(root, target)) {
    throw new SandboxError(`refused path "${relPath}": it resolves outside the workspace`);
  }
  return target;
}

/** The path relative to the workspace's real root ("" for the root itself). */
export async function workspaceRelative(workspace: string, absolute: string): Promise<string> {
  return relative(await realpath(workspace), absolute);
}

/**
 * Like confine, for a write: refused inside `.git` (git's config and hooks run programs) both as
 * written and after symlinks are resolved, and creates missing parent directories.
 */
export async function confineForWrite(workspace: string, relPath: string, create = true): Promise<string> {
  if (touchesGitDir(relPath)) throw new SandboxError(`refused path "${relPath}": writing inside .git is not allowed`);
  const target = await confine(workspace, relPath);
  const root = await realpath(workspace);
  const real = relative(root, target);
  if (touchesGitDir(real)) {
    throw new SandboxError(`refused path "${relPath}": it resolves to "${real}", inside .git, which is not allowed`);
  }
  if (!create) return target;
  await mkdir(dirname(target), { recursive: true });
  // Re-check after creating directories: nothing may have raced a symlink in.
  const parent = await realpath(dirname(target));
  if (!inside(root, parent) || touchesGitDir(relative(root, parent))) {
    throw new SandboxError(`refused path "${relPath}"`);
  }
  try {
    const st = await lstat(target);
    if (st.isSymbolicLink()) throw new SandboxError(`refused path "${relPath}": it is a symbolic link`);
  } catch (err) {
    if (err instanceof SandboxError) throw err;
  }
  return target;
}

const KEEP_ENV = ["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TMPDIR", "USER", "LOGNAME", "SHELL", "TZ"];

/** The environment passed to child processes: a short allow-list, never tokens or keys. */
export function scrubbedEnv(source: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const key of KEEP_ENV) if (source[key] !== undefined) out[key] = source[key];
  out.GIT_TERMINAL_PROMPT = "0";
  out.NO_COLOR = "1";
  out.CI = "1";
  return out;
}
