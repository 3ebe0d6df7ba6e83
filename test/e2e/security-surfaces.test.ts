// The CLI and the HTTP surface on `wrangler dev` with a real agent: the approval view shows each
// step's action and params (path, content), job output printed to the terminal carries no escape
// or control sequences, and an Idempotency-Key returns the same job over real HTTP.
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeGitRepo } from "../helpers/node/git-repo.ts";
import { type Stack, startStack } from "../helpers/node/stack.ts";
import { waitFor } from "../helpers/node/wait.ts";
import type { RunningWorker } from "../helpers/node/wrangler-dev.ts";

let stack: Stack;
let worker: RunningWorker;

const HOSTILE_OUTPUT = "hello\u001b]0;pwned title\u0007\u001b[2J\u001b[31mred\u001b[0m\r\u009b5m world \u202Efdp.exe\n";

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${worker.url}${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${worker.apiToken}`, "Content-Type": "application/json", ...init.headers },
  });
}

/** Runs `npm run skynet -- …` (the script itself, with this Node) and returns its output. */
function cli(...args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["scripts/skynet.ts", ...args], {
      env: { ...process.env, SKYNET_URL: worker.url, SKYNET_API_TOKEN: worker.apiToken },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString("utf8");
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString("utf8");
    });
    const timer = setTimeout(() => child.kill("SIGTERM"), 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

beforeAll(async () => {
  const repo = await makeGitRepo({ "README.md": "# demo\n" });
  await writeFile(`${repo.dir}/evil.txt`, HOSTILE_OUTPUT);
  stack = await startStack(repo, "e2e-security");
  worker = stack.worker;
});

afterAll(() => stack?.stop());

describe("the CLI", () => {
  it("shows what approving would run: action, path, size and content, the description as a note", async () => {
    const submitted = await cli("task", "create a new file .husky/pre-commit with [core] fsmonitor = touch /tmp/pwned");
    expect(submitted.code).toBe(0);
    const jobId = /\b(job_\w+)/.exec(submitted.out)?.[1] ?? "";
    expect(jobId).not.toBe("");
    await waitFor(
      async () => ((await (await call(`/api/jobs/${jobId}`)).json()) as { status: string }).status === "PLANNED",
      { timeoutMs: 20_000, what: "the plan" },
    );
    const { out } = await cli("status", jobId);
    expect(out).toContain("1. write_file · WRITE");
    expect(out).toContain("path: .husky/pre-commit");
    expect(out).toContain("size: 35 bytes");
    expect(out).toContain("| [core] fsmonitor = touch /tmp/pwned");
    expect(out).toContain('planner\'s note: "Create .husky/pre-commit"');
    expect(out).toMatch(new RegExp(`waiting for approval[^\\n]*: \\S.* approve ${jobId}`));
    expect((await cli("deny", jobId)).code).toBe(0);
  });

  it("prints job output without escape or control sequences, bidi made visible", async () => {
    const followed = await cli("task", "read the file evil.txt", "--follow");
    expect(followed.code).toBe(0);
    const jobId = /submitted (job_\w+)/.exec(followed.out)?.[1] ?? "";
    const logs = await cli("logs", jobId);
    for (const { out } of [followed, logs]) {
      expect(out).toContain("hello");
      expect(out).toContain("red");
      expect(out).toContain("⟨U+202E⟩fdp.exe");
      // biome-ignore lint/suspicious/noControlCharactersInRegex: asserting their absence
      expect(out).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202E]/);
    }
  });
});

describe("over real HTTP", () => {
  it("an Idempotency-Key returns the same job, another body with it is a 409", async () => {
    const post = (intent: string) =>
      call("/api/tasks", {
        method: "POST",
        body: JSON.stringify({ intent }),
        headers: { "Idempotency-Key": "e2e-key-1" },
      });
    const first = await post("check git status");
    const second = await post("check git status");
    expect([first.status, second.status]).toEqual([202, 200]);
    const ids = await Promise.all([first, second].map(async (r) => ((await r.json()) as { jobId: string }).jobId));
    expect(ids[0]).toBe(ids[1]);
    const other = await post("run the tests");
    expect(other.status).toBe(409);
  });

  it("a text/plain body is refused with 415", async () => {
    const res = await call("/api/tasks", {
      method: "POST",
      body: JSON.stringify({ intent: "check git status" }),
      headers: { "Content-Type": "text/plain" },
    });
    expect(res.status).toBe(415);
  });
});
