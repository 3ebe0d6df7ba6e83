// The agent against a real local WebSocket server, with real child processes in real temporary
// git repositories.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ExecutionStep } from "../../protocol/index.ts";
import { type GitRepo, makeGitRepo } from "../../test/helpers/node/git-repo.ts";
import { isAlive, processesWithArgv } from "../../test/helpers/node/processes.ts";
import { waitFor } from "../../test/helpers/node/wait.ts";
import { Agent } from "../src/agent.ts";
import type { AgentConfig } from "../src/config.ts";
import { FakeRegistry, spec, TOKEN } from "./fake-registry.ts";
import { startTestAgent, testConfig } from "./test-agent.ts";

let server: FakeRegistry;
let repo: GitRepo;
const agents: Agent[] = [];
const lines: string[] = [];

const config = (over: Partial<AgentConfig> = {}): AgentConfig => testConfig(server.url, repo.dir, over);

async function startAgent(over: Partial<AgentConfig> = {}): Promise<Agent> {
  const agent = await startTestAgent(config(over), { lines, agents });
  await server.waitFor("hello");
  return agent;
}

const step = (
  action: string,
  params: ExecutionStep["params"] = {},
  risk: ExecutionStep["risk"] = "READ_ONLY",
  id = "s1",
): ExecutionStep => ({ id, action, params, risk, timeoutS: 60 });

beforeEach(async () => {
  server = await new FakeRegistry().start();
  repo = await makeGitRepo({ "README.md": "# demo\n", "src/a.txt": "alpha\n" });
});

afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop(0);
  await server.close();
  await repo.cleanup();
});

describe("connection", () => {
  it("sends its token in the Authorization header and a hello with its workspaces", async () => {
    await startAgent();
    expect(server.authHeaders[0]).toBe(`Bearer ${TOKEN}`);
    const hello = await server.waitFor("hello");
    expect(hello).toMatchObject({ protocolVersion: 1, workspaces: ["default"], allowShell: false });
    expect(hello.capabilities).not.toContain("shell");
    await server.waitFor("heartbeat");
    expect(server.invalid).toEqual([]);
    expect(lines.join("\n")).not.toContain(TOKEN);
  });
});

describe("running jobs", () => {
  it("runs git status in the workspace and streams its real output", async () => {
    await writeFile(join(repo.dir, "untracked.txt"), "new\n");
    await startAgent();
    const s = spec([step("git_status")]);
    server.offer(s);
    await server.waitFor("job_accept");
    const done = await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    expect(done.status).toBe("SUCCEEDED");
    expect(done.result.steps[0]).toMatchObject({ stepId: "s1", outcome: "succeeded", exitCode: 0 });
    expect(server.logText(s.jobId)).toContain("untracked.txt");
    const seqs = server.of("log", s.jobId).map((f) => f.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i));
    expect(server.of("step_started", s.jobId)).toHaveLength(1);
  });

  it("runs several steps in order and stops at the first failure", async () => {
    await startAgent({ allowShell: true });
    const s = spec([
      step("git_log", { limit: 5 }),
      step("run_command", { argv: ["sh", "-c", "echo boom >&2; exit 3"] }, "ADMIN", "s2"),
      step("git_status", {}, "READ_ONLY", "s3"),
    ]);
    server.offer(s);
    const done = await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    expect(done.status).toBe("FAILED");
    expect(done.result.steps.map((r) => [r.stepId, r.outcome, r.exitCode])).toEqual([
      ["s1", "succeeded", 0],
      ["s2", "failed", 3],
      ["s3", "skipped", null],
    ]);
    expect(server.logText(s.jobId)).toContain("initial");
    expect(server.logText(s.jobId)).toContain("boom");
  });

  it("reports a command that does not exist", async () => {
    await startAgent({ allowShell: true });
    const s = spec([step("run_command", { argv: ["xyz123"] }, "ADMIN")]);
    server.offer(s);
    const done = await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    expect(done.status).toBe("FAILED");
    expect(done.result.steps[0]).toMatchObject({ exitCode: 127, error: "command not found: xyz123" });
  });

  it("writes a file, refusing to overwrite unless asked", async () => {
    await startAgent();
    const s = spec([step("write_file", { path: "notes/test.txt", content: "hello world" }, "WRITE")]);
    server.offer(s);
    expect((await server.waitFor("job_finished", (f) => f.jobId === s.jobId)).status).toBe("SUCCEEDED");
    expect(await readFile(join(repo.dir, "notes/test.txt"), "utf8")).toBe("hello world");
    const again = spec([step("write_file", { path: "notes/test.txt", content: "x" }, "WRITE")]);
    server.offer(again);
    const refused = await server.waitFor("job_finished", (f) => f.jobId === again.jobId);
    expect(refused.status).toBe("FAILED");
    expect(await readFile(join(repo.dir, "notes/test.txt"), "utf8")).toBe("hello world");
  });
});

describe("the offered lease", () => {
  it("sends every frame of a job under the offered token, the accept first", async () => {
    await startAgent();
    const s = spec([step("git_status")]);
    const fence = server.offer(s, "offered-lease-token-0123456789");
    await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    const mine = server.frames.filter((f) => "jobId" in f && f.jobId === s.jobId);
    expect(mine[0]).toMatchObject({ type: "job_accept", ...fence });
    expect(mine.every((f) => "leaseToken" in f && f.leaseToken === fence.leaseToken)).toBe(true);
  });

  it("turns down an offer whose lease names another agent, running nothing", async () => {
    await startAgent();
    const s = spec([step("write_file", { path: "not-mine.txt", content: "x" }, "WRITE")]);
    server.offer(s, "lease-token-0123456789abcdef", "agent_someone_else");
    const reject = await server.waitFor("job_reject", (f) => f.jobId === s.jobId);
    expect(reject.reason).toMatch(/held by agent_someone_else/);
    expect(server.of("job_accept", s.jobId)).toHaveLength(0);
    await expect(readFile(join(repo.dir, "not-mine.txt"), "utf8")).rejects.toThrow();
  });
});

describe("confinement and policy", () => {
  it("rejects a path with '..' before running anything", async () => {
    await startAgent();
    const s = spec([step("read_file", { path: "../../etc/passwd" })]);
    server.offer(s);
    const reject = await server.waitFor("job_reject", (f) => f.jobId === s.jobId);
    expect(reject.reason).toMatch(/leave the workspace/);
    expect(server.of("job_accept", s.jobId)).toHaveLength(0);
  });

  it("rejects an unknown action and answers an offer it cannot read", async () => {
    await startAgent();
    const s = spec([step("format_disk", {})]);
    server.offer(s);
    expect((await server.waitFor("job_reject", (f) => f.jobId === s.jobId)).reason).toMatch(/unknown action/);
    const bad = spec([step("git_status")]);
    const fence = { jobId: bad.jobId, attempt: 1, leaseToken: "lease-token-0123456789abcdef" };
    server.sendText(JSON.stringify({ type: "job_offer", ...fence, spec: { ...bad, steps: [] } }));
    const reject = await server.waitFor("job_reject", (f) => f.jobId === bad.jobId);
    expect(reject).toMatchObject(fence);
    expect(reject.reason).toMatch(/unreadable offer/);
    expect(server.of("job_accept")).toHaveLength(0);
  });

  it("refuses a symlink that escapes the workspace", async () => {
    const outside = await mkdtemp(join(tmpdir(), "skynet-outside-"));
    await writeFile(join(outside, "secret.txt"), "top secret\n");
    await symlink(outside, join(repo.dir, "escape"));
    await startAgent();
    for (const [action, params, risk] of [
      ["read_file", { path: "escape/secret.txt" }, "READ_ONLY"],
      ["write_file", { path: "escape/new.txt", content: "x" }, "WRITE"],
      ["list_files", { path: "escape" }, "READ_ONLY"],
    ] as const) {
      const s = spec([step(action, params, risk)]);
      server.offer(s);
      const done = await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
      expect(done.status).toBe("FAILED");
      expect(done.result.steps[0]?.error).toMatch(/outside the workspace/);
      expect(server.logText(s.jobId)).not.toContain("top secret");
    }
    await expect(readFile(join(outside, "new.txt"))).rejects.toThrow();
    await rm(outside, { recursive: true, force: true });
  });

  it("refuses run_command without --allow-shell and an understated risk", async () => {
    await startAgent();
    const s = spec([step("run_command", { argv: ["echo", "hi"] }, "ADMIN")]);
    server.offer(s);
    expect((await server.waitFor("job_reject", (f) => f.jobId === s.jobId)).reason).toMatch(/--allow-shell/);
    const sneaky = spec([step("git_push", {}, "READ_ONLY")]);
    server.offer(sneaky);
    expect((await server.waitFor("job_reject", (f) => f.jobId === sneaky.jobId)).reason).toMatch(/ADMIN/);
    const elsewhere = spec([step("git_status")], "someone-else");
    server.offer(elsewhere);
    expect((await server.waitFor("job_reject", (f) => f.jobId === elsewhere.jobId)).reason).toMatch(/does not serve/);
  });

  it("passes a scrubbed environment to commands", async () => {
    process.env.SKYNET_TEST_SECRET_TOKEN = "do-not-leak";
    await startAgent({ allowShell: true });
    const s = spec([step("run_command", { argv: ["env"] }, "ADMIN")]);
    server.offer(s);
    await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    delete process.env.SKYNET_TEST_SECRET_TOKEN;
    const env = server.logText(s.jobId);
    expect(env).toContain("GIT_TERMINAL_PROMPT=0");
    expect(env).not.toContain("do-not-leak");
  });
});

describe("cancel, caps and timeouts", () => {
  it("cancel kills the whole process tree, escalating to SIGKILL when TERM is ignored", async () => {
    await startAgent({ allowShell: true, cancelGraceMs: 500 });
    const marker = `${30 + Math.random()}`.slice(0, 8);
    const s = spec([
      step("run_command", { argv: ["sh", "-c", `trap '' TERM; sleep ${marker} & sleep ${marker}; wait`] }, "ADMIN"),
    ]);
    server.offer(s);
    await server.waitFor("step_started", (f) => f.jobId === s.jobId);
    // Both sleeps seen running (from /proc) before the cancel.
    const pids = await waitFor(
      async () => {
        const found = await processesWithArgv(["sleep", marker]);
        return found.length >= 2 ? found : undefined;
      },
      { what: "the sleeps to start" },
    );
    server.send({ type: "job_cancel", jobId: s.jobId, attempt: 1, reason: "user asked" });
    const done = await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    expect(done.status).toBe("CANCELLED");
    // The shell ignored SIGTERM: the step was killed by SIGKILL (128 + 9) after the grace period.
    expect(server.of("step_finished", s.jobId)).toMatchObject([{ stepId: "s1", outcome: "cancelled", exitCode: 137 }]);
    for (const pid of pids) expect(await isAlive(pid)).toBe(false);
  });

  it("truncates output beyond the cap with a visible marker", async () => {
    await startAgent({ allowShell: true, outputCapBytes: 4096 });
    const s = spec([step("run_command", { argv: ["sh", "-c", "head -c 200000 /dev/zero | tr '\\0' a"] }, "ADMIN")]);
    server.offer(s);
    const done = await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    expect(done.status).toBe("SUCCEEDED");
    const stdout = server
      .of("log", s.jobId)
      .filter((f) => f.stream === "stdout")
      .map((f) => f.data)
      .join("");
    expect(stdout).toBe("a".repeat(4096));
    expect(server.logText(s.jobId)).toContain("[output truncated after 4096 bytes");
  });

  it("keeps every frame under 64 KiB and never splits a UTF-8 character", async () => {
    await startAgent({ allowShell: true });
    const s = spec([
      step("run_command", { argv: ["node", "-e", "process.stdout.write('é€😀'.repeat(60000))"] }, "ADMIN"),
    ]);
    server.offer(s);
    await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    for (const f of server.of("log", s.jobId)) {
      expect(Buffer.byteLength(f.data)).toBeLessThanOrEqual(64 * 1024);
      expect(f.data).not.toContain("\uFFFD");
    }
    expect(server.logText(s.jobId)).toContain("é€😀".repeat(60000));
  });
});

describe("reconnect", () => {
  it("reconnects with backoff and resumes a running job", async () => {
    await startAgent({ allowShell: true });
    const s = spec([step("run_command", { argv: ["sh", "-c", "echo before; sleep 1.5; echo after"] }, "ADMIN")]);
    server.offer(s);
    await server.waitFor("step_started", (f) => f.jobId === s.jobId);
    server.drop();
    const resume = await server.waitFor("resume");
    expect(resume.running.map((r) => r.jobId)).toContain(s.jobId);
    expect(server.connections).toBe(2);
    const done = await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    expect(done.status).toBe("SUCCEEDED");
    const text = server.logText(s.jobId);
    expect(text).toContain("before");
    expect(text).toContain("after");
  });

  it("keeps output produced while the server is down, pausing the command at the bound", async () => {
    await startAgent({ allowShell: true });
    const size = 6 * 1024 * 1024; // more than the 4 MiB the agent journals while offline
    const s = spec([
      step("run_command", { argv: ["sh", "-c", `sleep 0.3; head -c ${size} /dev/zero | tr '\\0' y`] }, "ADMIN"),
    ]);
    server.offer(s);
    await server.waitFor("step_started", (f) => f.jobId === s.jobId);
    server.refuse = true;
    server.drop();
    await waitFor(() => lines.some((l) => l.includes("503")), { what: "a refused reconnect" });
    await new Promise((r) => setTimeout(r, 1000));
    expect(server.of("job_finished", s.jobId)).toHaveLength(0); // paused, not finished nor dropped
    server.refuse = false;
    const done = await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    expect(done.status).toBe("SUCCEEDED");
    expect((await server.waitFor("resume")).running.map((r) => r.jobId)).toContain(s.jobId);
    const bySeq = new Map(server.of("log", s.jobId).map((f) => [f.seq, f]));
    const seqs = [...bySeq.keys()].sort((a, b) => a - b);
    expect(seqs).toEqual(seqs.map((_, i) => i));
    const stdout = seqs
      .map((q) => bySeq.get(q))
      .filter((f) => f?.stream === "stdout")
      .map((f) => f?.data ?? "")
      .join("");
    expect(stdout.length).toBe(size);
    expect(stdout).toBe("y".repeat(size));
  });

  it("reports a job that finished while disconnected once it is back", async () => {
    await startAgent({ allowShell: true });
    const s = spec([step("run_command", { argv: ["sh", "-c", "sleep 0.3; echo offline-output"] }, "ADMIN")]);
    server.offer(s);
    await server.waitFor("step_started", (f) => f.jobId === s.jobId);
    server.refuse = true;
    server.drop();
    await new Promise((r) => setTimeout(r, 1200));
    expect(server.of("job_finished", s.jobId)).toHaveLength(0);
    server.refuse = false;
    const done = await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    expect(done.status).toBe("SUCCEEDED");
    expect(server.logText(s.jobId)).toContain("offline-output");
  });

  for (const [code, message] of [
    ["stale_lease", "attempt 1 is no longer current"],
    ["lease_ended", "the job is CANCELLED: its lease has ended"],
  ] as const) {
    it(`kills a job the server answers ${code} for, and sends nothing more for it`, async () => {
      await startAgent({ allowShell: true });
      const s = spec([step("run_command", { argv: ["sleep", "20"] }, "ADMIN")]);
      server.offer(s);
      await server.waitFor("step_started", (f) => f.jobId === s.jobId);
      const [pid] = await waitFor(
        async () => {
          const found = await processesWithArgv(["sleep", "20"]);
          return found.length > 0 ? found : undefined;
        },
        { what: "the step's process to run" },
      );
      server.send({ type: "error", code, message, jobId: s.jobId, attempt: 1 });
      await waitFor(async () => !(await isAlive(pid as number)), { what: "the job's process to be killed" });
      await new Promise((r) => setTimeout(r, 500));
      expect(server.of("job_finished", s.jobId)).toHaveLength(0);
    });
  }
});

describe("big output", () => {
  it("streams 50 MB byte-exact without the agent's memory growing with it", async () => {
    server.keepLogs = false;
    const stdoutHash = createHash("sha256");
    let stdoutBytes = 0;
    const size = 50 * 1024 * 1024;
    // The agent's V8 heap is capped well below the output size (and its young generation kept
    // small, so garbage is collected promptly instead of inflating the peak): if the agent kept
    // the output in memory it would die of it, and its peak RSS must stay far below 50 MB growth.
    const proc = spawn(
      process.execPath,
      [
        "--max-old-space-size=32",
        "--max-semi-space-size=2",
        resolve(import.meta.dirname, "../src/cli.ts"),
        "connect",
        "--server",
        server.url,
        "--config",
        join(repo.dir, "no-config.json"),
        "--workspace",
        `default=${repo.dir}`,
        "--allow-shell",
      ],
      { env: { ...process.env, SKYNET_AGENT_TOKEN: TOKEN }, stdio: "ignore" },
    );
    try {
      await server.waitFor("hello");
      const hwm = async () => {
        const status = await readFile(`/proc/${proc.pid}/status`, "utf8");
        return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? "0") * 1024;
      };
      await new Promise((r) => setTimeout(r, 300));
      const before = await hwm();
      const s = spec([step("run_command", { argv: ["sh", "-c", `head -c ${size} /dev/zero | tr '\\0' x`] }, "ADMIN")]);
      const frames: { seq: number; stream: string }[] = [];
      server.offer(s);
      const originalPush = server.frames.push.bind(server.frames);
      server.frames.push = (...items) => {
        for (const f of items)
          if (f.type === "log" && f.jobId === s.jobId) frames.push({ seq: f.seq, stream: f.stream });
        return originalPush(...items);
      };
      server.onLog = (data) => {
        if (!data.startsWith("$ ")) {
          stdoutHash.update(data);
          stdoutBytes += Buffer.byteLength(data);
        }
      };
      const done = await server.waitFor("job_finished", (f) => f.jobId === s.jobId, 60_000);
      expect(done.status).toBe("SUCCEEDED");
      const peak = await hwm();
      expect(proc.exitCode).toBeNull();
      expect(stdoutBytes).toBe(size);
      expect(stdoutHash.digest("hex")).toBe(createHash("sha256").update(Buffer.alloc(size, "x")).digest("hex"));
      expect(frames.map((f) => f.seq)).toEqual(frames.map((_, i) => i));
      // Peak resident memory grows by far less than the 50 MB that went through.
      expect(peak - before).toBeLessThan(size / 2);
    } finally {
      proc.kill("SIGKILL");
    }
  }, 90_000);
});

describe("final closes", () => {
  it("treats a refused token as final instead of retrying forever", async () => {
    const fatal: number[] = [];
    const agent = new Agent(config({ token: "skya_wrong_token_000000000000" }), {
      log: (l) => lines.push(l),
      onFatal: (c) => fatal.push(c),
    });
    agents.push(agent);
    agent.start();
    await waitFor(() => fatal.length === 1, { what: "the refusal" });
    await new Promise((r) => setTimeout(r, 300));
    expect(fatal).toEqual([4001]);
    expect(server.authHeaders.filter((h) => h === "Bearer skya_wrong_token_000000000000")).toHaveLength(1);
    expect(lines.join("\n")).toMatch(/refused this agent's token/);
  });

  it("stops instead of reconnecting when its token is revoked or another process took over", async () => {
    for (const code of [4000, 4001]) {
      const fatal: number[] = [];
      const agent = new Agent(config(), { log: (l) => lines.push(l), onFatal: (c) => fatal.push(c) });
      agents.push(agent);
      agent.start();
      await waitFor(() => agent.connected, { what: "welcome" });
      const before = server.connections;
      server.closeWith(code, code === 4000 ? "replaced by a newer connection" : "token revoked");
      await waitFor(() => fatal.length === 1, { what: "the fatal close" });
      await new Promise((r) => setTimeout(r, 300));
      expect(fatal).toEqual([code]);
      expect(server.connections).toBe(before);
    }
  });
});

describe("keepalive", () => {
  it("pings between heartbeats and reconnects when the server goes silent", async () => {
    await startAgent();
    await waitFor(() => server.pings >= 2, { what: "keepalive pings" });
    expect(lines.join("\n")).not.toContain("ignored a bad frame");
    const before = server.connections;
    server.silent = true;
    await waitFor(() => lines.some((l) => l.includes("no word from the server")), {
      what: "the agent to notice the silence",
      timeoutMs: 10_000,
    });
    server.silent = false;
    await waitFor(() => server.connections > before, { what: "a reconnect", timeoutMs: 10_000 });
  });
});
