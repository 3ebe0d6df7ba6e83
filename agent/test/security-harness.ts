// Shared set-up for the agent's hostile-input tests: a real agent against the fake registry, a
// real temporary git repository as the workspace, and a sentinel directory outside it that an
// attack would write to.
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentToServer, ExecutionResult, ExecutionStep } from "../../protocol/index.ts";
import { type GitRepo, makeGitRepo } from "../../test/helpers/node/git-repo.ts";
import type { Agent } from "../src/agent.ts";
import type { AgentConfig } from "../src/config.ts";
import { FakeRegistry, spec } from "./fake-registry.ts";
import { startTestAgent, testConfig } from "./test-agent.ts";

export interface Harness {
  server: FakeRegistry;
  repo: GitRepo;
  /** A directory outside the workspace; attacks try to create files here. */
  outside: string;
  lines: string[];
  start(over?: Partial<AgentConfig>): Promise<Agent>;
  /** Offers a job and waits for its result; returns the result and everything the agent sent for it. */
  run(steps: ExecutionStep[]): Promise<{ result: ExecutionResult; log: string; frames: string }>;
  /** Offers a job the agent must refuse at the door (job_reject); returns the reason and the frames. */
  reject(steps: ExecutionStep[]): Promise<{ reason: string; frames: string }>;
  /** Files in the sentinel directory (must stay empty). */
  sentinels(): Promise<string[]>;
  close(): Promise<void>;
}

export const step = (
  action: string,
  params: ExecutionStep["params"] = {},
  risk: ExecutionStep["risk"] = "READ_ONLY",
  id = "s1",
): ExecutionStep => ({ id, action, params, risk, timeoutS: 60 });

export async function harness(files?: Record<string, string>): Promise<Harness> {
  const server = await new FakeRegistry().start();
  const repo = await makeGitRepo(files);
  const outside = await mkdtemp(join(tmpdir(), "skynet-sentinel-"));
  const lines: string[] = [];
  const agents: Agent[] = [];
  return {
    server,
    repo,
    outside,
    lines,
    start: (over = {}) =>
      startTestAgent(testConfig(server.url, repo.dir, { name: "security-agent", ...over }), { lines, agents }),
    async run(steps) {
      const s = spec(steps);
      server.offer(s);
      const done = await server.waitFor("job_finished", (f) => f.jobId === s.jobId);
      return { result: done.result, log: server.logText(s.jobId), frames: framesOf(server, s.jobId) };
    },
    async reject(steps) {
      const s = spec(steps);
      server.offer(s);
      const rejected = await server.waitFor("job_reject", (f) => f.jobId === s.jobId);
      return { reason: rejected.reason, frames: framesOf(server, s.jobId) };
    },
    sentinels: () => readdir(outside),
    async close() {
      for (const a of agents.splice(0)) await a.stop(0);
      await server.close();
      await repo.cleanup();
      await rm(outside, { recursive: true, force: true });
    },
  };
}

/** Everything the agent sent about a job, minus the lease fence itself (the server's own token). */
function framesOf(server: FakeRegistry, jobId: string): string {
  return server.frames
    .filter((f: AgentToServer) => "jobId" in f && f.jobId === jobId)
    .map((f) => JSON.stringify({ ...f, leaseToken: undefined }))
    .join("\n");
}

export const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

export const read = (path: string) => readFile(path, "utf8");
