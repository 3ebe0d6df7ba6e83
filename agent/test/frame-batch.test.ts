// Job frames batched on the wire: the accept, a short step's start, output and finish and the
// job's result travel in one `batch` frame, in order; a writing step's start goes alone, before it runs; a
// long output is cut into batches under the size bound, byte-exact. The linger is a minute here,
// so the machine's speed decides nothing: every frame that arrives was flushed by a rule (the
// job's end, a writing step, a keepalive, the size bound), never by the timer.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ExecutionStep } from "../../protocol/index.ts";
import { type GitRepo, makeGitRepo } from "../../test/helpers/node/git-repo.ts";
import { waitFor } from "../../test/helpers/node/wait.ts";
import { Agent } from "../src/agent.ts";
import { FakeRegistry, spec, TOKEN } from "./fake-registry.ts";

let server: FakeRegistry;
let repo: GitRepo;
const agents: Agent[] = [];

beforeEach(async () => {
  server = await new FakeRegistry().start();
  repo = await makeGitRepo({ "README.md": "# batch\n" });
});

afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop(0);
  await server.close();
  await repo.cleanup();
});

const LONG_LINGER = { batch: { lingerMs: 60_000, acceptLingerMs: 60_000 } };

async function startAgent(): Promise<Agent> {
  const agent = new Agent(
    {
      serverUrl: server.url,
      token: TOKEN,
      name: "batch-agent",
      workspaces: { default: repo.dir },
      allowShell: true,
      maxConcurrency: 2,
      cancelGraceMs: 500,
      outputCapBytes: 10 * 1024 * 1024,
      reconnectBaseMs: 50,
      reconnectMaxMs: 400,
    },
    { log: () => undefined },
    LONG_LINGER,
  );
  agents.push(agent);
  agent.start();
  await waitFor(() => agent.connected, { what: "the agent to be welcomed" });
  return agent;
}

const command = (argv: string[], risk: ExecutionStep["risk"] = "ADMIN", id = "s1"): ExecutionStep => ({
  id,
  action: "run_command",
  params: { argv },
  risk,
  timeoutS: 60,
});

const stdout = (jobId: string) =>
  server
    .of("log", jobId)
    .filter((f) => f.stream === "stdout")
    .sort((a, b) => a.seq - b.seq)
    .map((f) => f.data)
    .join("");

describe("batched job frames", () => {
  it("sends a short job's accept, start, output, finish and result as one batch, in order", async () => {
    await startAgent();
    const job = spec([{ id: "s1", action: "git_status", params: {}, risk: "READ_ONLY", timeoutS: 60 }]);
    server.offer(job);
    await server.waitFor("job_finished", (f) => f.jobId === job.jobId);
    const mine = server.batches.filter((b) => b.jobId === job.jobId);
    // The accept leads the one batch that carries everything: one frame, one call on the server.
    expect(server.of("job_accept", job.jobId)).toHaveLength(1);
    expect(mine).toHaveLength(1);
    const types = mine[0]?.types ?? [];
    expect(types.slice(0, 2)).toEqual(["job_accept", "step_started"]);
    expect(types.slice(-2)).toEqual(["step_finished", "job_finished"]);
    expect(types.slice(2, -2).every((t) => t === "log")).toBe(true);
    expect(types.length).toBeGreaterThan(3);
    // Each frame once: nothing was sent both in and outside the batch.
    expect(server.of("step_started", job.jobId)).toHaveLength(1);
    expect(server.logText(job.jobId)).toContain("On branch");
    // The accept waited in that batch while the step ran, and says so (a floor: the step's own
    // duration, measured on the wall clock, so with a millisecond of rounding either way).
    const [accept] = server.of("job_accept", job.jobId);
    const [finished] = server.of("step_finished", job.jobId);
    expect(accept?.heldMs).toBeGreaterThanOrEqual((finished?.durationMs ?? 0) - 2);
    expect(accept?.heldMs).toBeGreaterThan(0);
  });

  it("sends a writing step's start on its own, before the step runs", async () => {
    await startAgent();
    const job = spec([command(["sh", "-c", "echo wrote"])]);
    server.offer(job);
    await server.waitFor("job_finished", (f) => f.jobId === job.jobId);
    const started = server.frames.findIndex((f) => f.type === "step_started" && f.jobId === job.jobId);
    const output = server.frames.findIndex((f) => f.type === "log" && f.jobId === job.jobId);
    expect(started).toBeGreaterThan(-1);
    expect(output).toBeGreaterThan(started);
    // No batch held the start together with the step's output: it was sent (after the accept
    // it went with) before the output existed.
    for (const b of server.batches.filter((x) => x.jobId === job.jobId && x.types.includes("step_started")))
      expect(b.types).toEqual(["job_accept", "step_started"]);
    expect(stdout(job.jobId)).toBe("wrote\n");
  });

  it("cuts a long output into batches under the size bound, byte-exact and in order", async () => {
    await startAgent();
    const size = 3 * 1024 * 1024;
    // Hex text: every byte of it checked below, none escaped by JSON.
    const job = spec([command(["sh", "-c", `head -c ${size / 2} /dev/urandom | od -An -v -tx1 | tr -d ' \\n'`])]);
    server.offer(job);
    await server.waitFor("job_finished", (f) => f.jobId === job.jobId, 60_000);
    const text = stdout(job.jobId);
    expect(text).toMatch(/^[0-9a-f]+$/);
    expect(text.length).toBe(size);
    const seqs = server.of("log", job.jobId).map((f) => f.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i));
    expect(server.batches.filter((b) => b.jobId === job.jobId).length).toBeGreaterThan(0);
    expect(server.invalid).toEqual([]);
  });

  it("bounds a batch in bytes: output in a three-byte alphabet still fits a Worker's 1 MiB message", async () => {
    await startAgent();
    // 語 is three bytes of UTF-8 and one character: a bound in characters would let a batch grow
    // to three times its size in bytes.
    const chars = 1024 * 1024;
    const job = spec([command(["sh", "-c", `head -c ${chars} /dev/zero | tr '\\0' x | sed 's/x/語/g'`])]);
    server.offer(job);
    await server.waitFor("job_finished", (f) => f.jobId === job.jobId, 60_000);
    expect(server.invalid).toEqual([]);
    const text = stdout(job.jobId);
    expect(text.length).toBe(chars);
    expect(text).toMatch(/^語+$/);
    expect(server.batches.filter((b) => b.jobId === job.jobId).length).toBeGreaterThan(0);
  });
});
