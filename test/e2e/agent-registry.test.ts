// The real agent process against the real registry on wrangler dev (until now these were tested
// only against agent/test/fake-registry.ts, which checks no lease tokens): a second process with
// the same token (close 4000 → exit 4), a revoked token (4001 → exit 3), and a half-open link:
// the keepalive notices the silence, and the step of the attempt the server gave up on is killed
// when the agent comes back with its stale lease.
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent } from "../helpers/node/agent-process.ts";
import { ApiClient } from "../helpers/node/api-client.ts";
import { type GitRepo, makeGitRepo } from "../helpers/node/git-repo.ts";
import { isAlive, processesWithArgv } from "../helpers/node/processes.ts";
import { startTcpProxy, type TcpProxy } from "../helpers/node/tcp-proxy.ts";
import { waitFor } from "../helpers/node/wait.ts";
import { type RunningWorker, startWorker } from "../helpers/node/wrangler-dev.ts";

let worker: RunningWorker;
let client: ApiClient;
let repo: GitRepo;
const agents: AgentProcess[] = [];

beforeAll(async () => {
  worker = await startWorker({
    vars: { HEARTBEAT_INTERVAL_SECONDS: "1", LEASE_SECONDS: "3", RECONNECT_GRACE_SECONDS: "2" },
  });
  client = new ApiClient(worker.url, worker.apiToken);
  repo = await makeGitRepo({ "README.md": "# agents\n" });
});

afterAll(async () => {
  for (const a of agents) await a.kill();
  await worker?.stop();
  await repo?.cleanup();
});

async function online(agentId: string): Promise<boolean> {
  const res = await client.call<{ online: { agentId: string }[] }>("/api/agents");
  return res.body.online.some((a) => a.agentId === agentId);
}

async function agent(
  token: string,
  name: string,
  projectId: string,
  workspace = repo.dir,
  url = worker.url,
  env?: Record<string, string>,
) {
  const proc = await startAgent({ url, token, workspace, projectId, name, env });
  agents.push(proc);
  const exit = new Promise<number | null>((resolve) => {
    if (proc.proc.exitCode !== null) resolve(proc.proc.exitCode);
    else proc.proc.once("exit", (code) => resolve(code));
  });
  return { proc, exit };
}

describe("the agent against the real registry", () => {
  it("a second process with the same token: the first exits with code 4, the second serves", async () => {
    const { agentId, token } = await client.pair("twin");
    const first = await agent(token, "twin-1", "twins");
    await waitFor(() => online(agentId), { what: `the first agent online\n${first.proc.logs()}` });
    const second = await agent(token, "twin-2", "twins");
    expect(await first.exit).toBe(4);
    expect(first.proc.logs()).toContain("another agent process connected with this token; stopping this one");
    await waitFor(() => online(agentId), { what: "the second agent online" });
    const jobId = await client.submit("check git status", "twins");
    const done = await client.waitFinished(jobId);
    expect(done).toMatchObject({ status: "SUCCEEDED", agentId, attempt: 1 });
    expect(second.proc.proc.exitCode).toBeNull();
    await second.proc.stop();
  });

  it("a revoked token: the agent exits with code 3 and says why", async () => {
    const { agentId, token } = await client.pair("revoked");
    const a = await agent(token, "revoked", "revoked");
    await waitFor(() => online(agentId), { what: "the agent online" });
    const tokens = await client.call<{ tokens: { id: string; agentId: string }[] }>("/api/agents/tokens");
    const id = tokens.body.tokens.find((t) => t.agentId === agentId)?.id;
    expect(id).toBeDefined();
    expect((await client.call(`/api/agents/tokens/${id}`, { method: "DELETE" })).status).toBe(200);
    expect(await a.exit).toBe(3);
    expect(a.proc.logs()).toContain("this agent's token was revoked");
    expect(await online(agentId)).toBe(false);
  });

  it("a half-open link: keepalive reconnects, and the stale attempt's step is killed", async () => {
    let proxy: TcpProxy | undefined;
    const slow = await makeGitRepo({ "README.md": "# half-open\n" });
    // git status's fsmonitor hook sleeps (a marked, long sleep) the first time only. The agent
    // ignores a repository's own fsmonitor, so the hook is named in its user's global config.
    const marker = `${300 + Math.floor(Math.random() * 1000) / 10}`;
    const home = await mkdtemp(join(tmpdir(), "skynet-half-open-home-"));
    try {
      const hook = join(home, "slow-fsmonitor.sh");
      await writeFile(
        hook,
        `#!/bin/sh\nif [ ! -f "${home}/slept" ]; then touch "${home}/slept"; sleep ${marker}; fi\nexit 1\n`,
      );
      await chmod(hook, 0o755);
      await writeFile(join(home, ".gitconfig"), `[core]\n\tfsmonitor = ${hook}\n`);
      proxy = await startTcpProxy(worker.port);
      const { agentId, token } = await client.pair("half-open");
      const a = await agent(token, "half-open", "half-open", slow.dir, proxy.url, { HOME: home });
      await waitFor(() => online(agentId), { what: "the agent online" });

      const jobId = await client.submit("check git status", "half-open");
      await client.waitStatus(jobId, ["RUNNING"]);
      const [pid] = await waitFor(
        async () => {
          const found = await processesWithArgv(["sleep", marker]);
          return found.length > 0 ? found : undefined;
        },
        { what: "attempt 1's step process" },
      );
      expect(proxy.freeze()).toBe(1);
      // The server hears nothing: the lease runs out and the READ_ONLY job gets a new attempt.
      await waitFor(async () => (await client.job(jobId)).attempt === 2 || undefined, {
        what: "the job to be re-dispatched",
        timeoutMs: 30_000,
      });
      // The agent hears nothing either: its keepalive gives up on the link.
      await waitFor(() => a.proc.logs().includes("no word from the server for three heartbeats; reconnecting"), {
        what: `the agent's keepalive to notice\n${a.proc.logs()}`,
      });
      expect(await isAlive(pid as number)).toBe(true);
      proxy.thaw();
      // Back online with attempt 1's lease: the registry refuses it and the agent kills the step.
      await waitFor(async () => !(await isAlive(pid as number)), {
        what: `attempt 1's step to be killed\n${a.proc.logs()}`,
      });
      // Killed by the cancel, not by the step's own timeout ("failed: timed out after …").
      const killed = new RegExp(`\\bjob ${jobId} cancelled$`, "m");
      await waitFor(() => killed.test(a.proc.logs()) || undefined, {
        what: `the agent to report the step cancelled\n${a.proc.logs()}`,
      });
      expect(a.proc.logs()).toContain(
        `job ${jobId} attempt 1 cancelled by the server: attempt 1 of ${jobId} is not leased to this agent`,
      );
      expect(a.proc.proc.exitCode).toBeNull();
      await waitFor(() => online(agentId), { what: "the agent back online" });
      // Attempt 2 then runs on this same agent: an offer lost on the frozen link is not a refusal.
      await waitFor(async () => (await client.job(jobId)).status === "SUCCEEDED", {
        what: `attempt 2 to succeed on the reconnected agent\n${a.proc.logs()}`,
        timeoutMs: 90_000,
      });
      expect(await client.job(jobId)).toMatchObject({ status: "SUCCEEDED", attempt: 2 });
    } finally {
      await proxy?.close();
      await slow.cleanup();
      await rm(home, { recursive: true, force: true });
      // If the test failed before the kill, do not leave its sleep behind.
      for (const pid of await processesWithArgv(["sleep", marker])) process.kill(pid, "SIGKILL");
    }
  });
});
