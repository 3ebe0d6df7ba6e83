// The file actions (list, read, search, write). Every path is confined to the workspace after
// symlinks are resolved, secret files are refused or withheld, and nothing is written in `.git`.
import { lstat, open, readdir, readFile, realpath, stat, writeFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import type { ActionParams } from "../../protocol/index.ts";
import { confine, confineForWrite, SandboxError } from "./sandbox.ts";
import { EMPTY_POLICY, protectedFiles, secretReason } from "./secrets.ts";
import type { StepContext, StepRun } from "./step.ts";

const SKIP_DIRS = new Set([".git", "node_modules", ".venv", "target", "dist", ".wrangler"]);
const say = (ctx: StepContext, text: string) => ctx.out("system", Buffer.from(`${text}\n`));

/**
 * Refuses a path that is secret as written or as resolved (a symlink `notes -> .env` is still
 * `.env`), or that is one of the agent's protected files (its config, git's global config).
 */
export async function refuseSecret(ctx: StepContext, relPath: string, absolute: string): Promise<void> {
  const policy = ctx.pathPolicy ?? EMPTY_POLICY;
  const real = await realpath(absolute).catch(() => absolute);
  const root = await realpath(ctx.workspace);
  for (const candidate of [relPath, relative(root, real)]) {
    const why = secretReason(candidate, policy);
    if (why) throw new SandboxError(`refused: ${why}`);
  }
  const guarded = protectedFiles(ctx.agentConfigPath).map((p) => resolve(p));
  for (const p of guarded) {
    const realGuarded = await realpath(p).catch(() => p);
    if (real === realGuarded || absolute === p) {
      throw new SandboxError(`refused: "${relPath}" is the agent's configuration or git's global config`);
    }
  }
}

export async function listFiles(q: ActionParams<"list_files">, ctx: StepContext): Promise<StepRun> {
  const root = await confine(ctx.workspace, q.path);
  if (q.path !== ".") await refuseSecret(ctx, q.path, root);
  const policy = ctx.pathPolicy ?? EMPTY_POLICY;
  const lines: string[] = [];
  let withheld = 0;
  const walk = async (dir: string, depth: number): Promise<void> => {
    if (lines.length >= 5000) return;
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
    for (const e of entries) {
      const rel = relative(ctx.workspace, join(dir, e.name));
      if (secretReason(rel, policy)) {
        // Its name is shown (so nobody goes looking for it), never its contents.
        lines.push(`${rel}${e.isDirectory() ? "/" : ""} (withheld: secret)`);
        withheld += 1;
      } else if (e.isDirectory()) {
        lines.push(`${rel}/`);
        if (!SKIP_DIRS.has(e.name) && depth < q.maxDepth) await walk(join(dir, e.name), depth + 1);
      } else lines.push(e.isSymbolicLink() ? `${rel} -> (link)` : rel);
      if (lines.length >= 5000) {
        lines.push("[listing truncated at 5000 entries]");
        return;
      }
    }
  };
  await walk(root, 1);
  await ctx.out("stdout", Buffer.from(`${lines.join("\n")}\n`));
  if (withheld > 0) await say(ctx, `${withheld} secret file(s) withheld`);
  return { outcome: "succeeded", exitCode: 0 };
}

export async function readOne(q: ActionParams<"read_file">, ctx: StepContext): Promise<StepRun> {
  const path = await confine(ctx.workspace, q.path);
  await refuseSecret(ctx, q.path, path);
  // A FIFO or device would block or never end: only regular files are read.
  const st = await stat(path).catch(() => null);
  if (!st) throw new SandboxError(`no such file: ${q.path}`);
  if (!st.isFile()) throw new SandboxError(`refused: "${q.path}" is not a regular file`);
  const handle = await open(path, "r");
  try {
    const buf = Buffer.alloc(Math.min(q.maxBytes, ctx.outputCapBytes));
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    await ctx.out("stdout", buf.subarray(0, bytesRead));
    const size = (await handle.stat()).size;
    if (size > bytesRead) await say(ctx, `[file truncated: showed ${bytesRead} of ${size} bytes]`);
  } finally {
    await handle.close();
  }
  return { outcome: "succeeded", exitCode: 0 };
}

export async function searchCode(q: ActionParams<"search_code">, ctx: StepContext): Promise<StepRun> {
  const root = await confine(ctx.workspace, q.path ?? ".");
  if (q.path && q.path !== ".") await refuseSecret(ctx, q.path, root);
  const policy = ctx.pathPolicy ?? EMPTY_POLICY;
  const needle = q.pattern.toLowerCase();
  let matches = 0;
  let skipped = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (matches >= 500) return;
      const full = join(dir, e.name);
      const rel = relative(ctx.workspace, full);
      if (secretReason(rel, policy)) {
        skipped += 1;
        continue;
      }
      if (e.isDirectory()) {
        if (!SKIP_DIRS.has(e.name)) await walk(full);
        continue;
      }
      // Symbolic links are not followed (one could point at a secret or out of the workspace).
      if (!e.isFile()) continue;
      const st = await lstat(full);
      if (st.size > 1024 * 1024) continue;
      const text = await readFile(full, "utf8").catch(() => "");
      if (text.includes("\0")) continue;
      const lines = text.split("\n");
      for (let i = 0; i < lines.length && matches < 500; i++) {
        if (lines[i]?.toLowerCase().includes(needle)) {
          matches += 1;
          await ctx.out("stdout", Buffer.from(`${rel}:${i + 1}: ${lines[i]?.slice(0, 400)}\n`));
        }
      }
    }
  };
  await walk(root);
  await say(
    ctx,
    (matches === 0
      ? `no matches for "${q.pattern}"`
      : `${matches} match(es)${matches >= 500 ? " (stopped at 500)" : ""}`) +
      (skipped > 0 ? `; ${skipped} secret file(s) not searched` : ""),
  );
  return { outcome: "succeeded", exitCode: 0 };
}

export async function writeOne(q: ActionParams<"write_file">, ctx: StepContext): Promise<StepRun> {
  // Every check before anything is created: a refused write must not even make its directories.
  await refuseSecret(ctx, q.path, await confineForWrite(ctx.workspace, q.path, false));
  const path = await confineForWrite(ctx.workspace, q.path);
  try {
    await writeFile(path, q.content, { flag: q.overwrite ? "w" : "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      const error = `${q.path} already exists; ask to overwrite it explicitly`;
      await say(ctx, error);
      return { outcome: "failed", exitCode: 1, error };
    }
    throw err;
  }
  await say(ctx, `wrote ${Buffer.byteLength(q.content)} bytes to ${q.path}`);
  return { outcome: "succeeded", exitCode: 0 };
}
