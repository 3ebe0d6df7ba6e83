// "what changed since …" planned by the rules and run by the agent's executor in a real git
// repository: only the commits after that time are listed.
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { executeStep } from "../../agent/src/executor.ts";
import { buildExecutionSpec } from "../../src/core/dispatcher.ts";
import { RulePlanner } from "../../src/planners/rules.ts";
import { type GitRepo, makeGitRepo } from "../helpers/node/git-repo.ts";

const run = promisify(execFile);
let repo: GitRepo;

async function commitAt(daysAgo: number, subject: string): Promise<void> {
  const when = new Date(Date.now() - daysAgo * 86_400_000).toISOString();
  await writeFile(join(repo.dir, `${subject}.txt`), subject);
  await run("git", ["add", "-A"], { cwd: repo.dir });
  await run("git", ["commit", "--quiet", "-m", subject], {
    cwd: repo.dir,
    env: { ...process.env, GIT_AUTHOR_DATE: when, GIT_COMMITTER_DATE: when },
  });
}

beforeAll(async () => {
  repo = await makeGitRepo();
  await commitAt(10, "ten-days-old");
  await commitAt(1.5, "yesterday-ish");
  await commitAt(0, "today");
});
afterAll(async () => {
  await repo.cleanup();
});

async function logFor(intent: string): Promise<string> {
  const planned = await new RulePlanner().plan({ jobId: "job_0123456789abcdef", intent, projectId: "default" });
  if (!planned.ok) throw new Error(planned.error.reason);
  const built = buildExecutionSpec(planned.value.plan, { attempt: 1, projectId: "default", jobTimeoutS: 60 });
  if (!built.ok) throw new Error(built.error);
  const step = built.value.steps[0];
  if (!step) throw new Error("no step");
  let out = "";
  const ran = await executeStep(step, {
    workspace: repo.dir,
    allowShell: false,
    timeoutMs: 30_000,
    outputCapBytes: 1_000_000,
    cancelGraceMs: 1000,
    out: async (_stream, data) => {
      out += data.toString("utf8");
    },
    signal: new AbortController().signal,
  });
  expect(ran.outcome).toBe("succeeded");
  return out;
}

describe("git log since", () => {
  it("lists only the commits after the time the sentence names", async () => {
    const threeDays = await logFor("what changed since 3 days ago?");
    expect(threeDays).toContain("yesterday-ish");
    expect(threeDays).toContain("today");
    expect(threeDays).not.toContain("ten-days-old");
    const lastWeek = await logFor("show me the commits since last week");
    expect(lastWeek).not.toContain("ten-days-old");
    expect(lastWeek).toContain("yesterday-ish");
    const all = await logFor("show the last 10 commits");
    expect(all).toContain("ten-days-old");
  });
});
