// A step that changes things starts only once the server has its step_started: a server that
// never heard of the start (the connection was cut right after the accept) takes the attempt for
// one that never ran and may give the job to another agent; the step must then never run here.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import type { ExecutionStep } from "../../protocol/index.ts";
import { type GitRepo, makeGitRepo } from "../../test/helpers/node/git-repo.ts";
import { waitFor } from "../../test/helpers/node/wait.ts";
import type { Agent } from "../src/agent.ts";
import { FakeRegistry, spec } from "./fake-registry.ts";
import { startTestAgent, testConfig } from "./test-agent.ts";

let server: FakeRegistry;
let repo: GitRepo;
let tmp: string;
const agents: Agent[] = [];
const lines: string[] = [];

beforeEach(async () => {
  lines.length = 0;
  tmp = await mkdtemp(join(tmpdir(), "skynet-confirm-"));
  server = await new FakeRegistry().start();
  repo = await makeGitRepo({ "README.md": "# confirm\n" });
});

afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop(0);
  await server.close();
  await repo.cleanup();
  await rm(tmp, { recursive: true, force: true });
});

function startAgent(): Promise<Agent> {
  const config = testConfig(server.url, repo.dir, {
    name: "confirm-agent",
    allowShell: true,
    outputCapBytes: 1024 * 1024,
  });
  return startTestAgent(config, { lines, agents });
}

const step = (trace: string, risk: ExecutionStep["risk"]): ExecutionStep => ({
  id: "s1",
  action: "run_command",
  params: { argv: ["sh", "-c", `echo ran >> '${trace}'`] },
  risk,
  timeoutS: 60,
});
const read = (path: string) => readFile(path, "utf8").catch(() => "");

it("an ADMIN step whose step_started the server never got does not run; the server's stale answer stops it", async () => {
  const agent = await startAgent();
  const trace = join(tmp, "trace");
  const job = spec([step(trace, "ADMIN")]);
  // The server hears nothing from here on (frames and keepalives vanish, as in a cut).
  server.silent = true;
  server.offer(job);
  await waitFor(() => lines.some((l) => l.includes(`job ${job.jobId} accepted`)), { what: "the offer to be taken" });
  // Meanwhile the server gave the job to someone else: after the reconnect, this attempt is stale.
  server.staleBelow.set(job.jobId, 2);
  server.silent = false;
  server.drop();
  await waitFor(() => server.staleReplies.some((r) => r.jobId === job.jobId), { what: "the replay to be refused" });
  await waitFor(() => agent.runningJobs.length === 0, { what: "the attempt to stop" });
  expect(await read(trace)).toBe("");
  expect(server.of("job_finished", job.jobId)).toEqual([]);
});

it("once the server has its step_started, the ADMIN step runs", async () => {
  await startAgent();
  const trace = join(tmp, "trace");
  const admin = spec([step(trace, "ADMIN")]);
  server.offer(admin);
  const done = await server.waitFor("job_finished", (f) => f.jobId === admin.jobId);
  expect(done.status).toBe("SUCCEEDED");
  expect(await read(trace)).toBe("ran\n");
});
