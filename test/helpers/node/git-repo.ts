// Real temporary git repositories for agent and end-to-end tests.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface GitRepo {
  dir: string;
  git(...args: string[]): Promise<string>;
  cleanup(): Promise<void>;
}

/** Creates a repository with the given files committed on branch main. */
export async function makeGitRepo(files: Record<string, string> = { "README.md": "# test\n" }): Promise<GitRepo> {
  const dir = await realpath(await mkdtemp(join(tmpdir(), "skynet-repo-")));
  const git = async (...args: string[]) => (await run("git", args, { cwd: dir })).stdout;
  await git("init", "--quiet", "--initial-branch=main");
  await git("config", "user.email", "test@skynet.invalid");
  await git("config", "user.name", "SKYNET test");
  await git("config", "commit.gpgsign", "false");
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  await git("add", "-A");
  await git("commit", "--quiet", "-m", "initial");
  return { dir, git, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
