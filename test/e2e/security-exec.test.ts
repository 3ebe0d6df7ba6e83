// The execution boundary end to end: tasks through the real JSON API on wrangler dev, real agent
// processes (skynet-agent connect) in real git repositories, and a sentinel directory outside the
// workspaces that every attack would write to.
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent } from "../helpers/node/agent-process.ts";
import { ApiClient } from "../helpers/node/api-client.ts";
import { type GitRepo, makeGitRepo } from "../helpers/node/git-repo.ts";
import { processesMentioning as pidsWith } from "../helpers/node/processes.ts";
import { waitFor } from "../helpers/node/wait.ts";
import { type RunningWorker, startWorker } from "../helpers/node/wrangler-dev.ts";

const SECRET = "sk_live_e2e_DO_NOT_LEAK_7f3a";
let worker: RunningWorker;
let client: ApiClient;
let outside: string;
const agents: AgentProcess[] = [];
const repos: GitRepo[] = [];

async function serve(project: string, files: Record<string, string>, allowShell = false): Promise<GitRepo> {
  const repo = await makeGitRepo(files);
  repos.push(repo);
  const { token } = await client.pair(`sec-${project}`);
  agents.push(
    await startAgent({ url: worker.url, token, workspace: repo.dir, projectId: project, name: project, allowShell }),
  );
  return repo;
}

/** Everything the API will say about a job: its view, events and stored log lines. */
async function everything(jobId: string): Promise<string> {
  const view = await client.call(`/api/jobs/${jobId}`);
  const events = await client.call(`/api/jobs/${jobId}/events`);
  const logs = await client.call(`/api/jobs/${jobId}/logs`);
  return JSON.stringify([view.body, events.body, logs.body]);
}

beforeAll(async () => {
  outside = await mkdtemp(join(tmpdir(), "skynet-e2e-sentinel-"));
  worker = await startWorker();
  client = new ApiClient(worker.url, worker.apiToken);
}, 120_000);

afterAll(async () => {
  for (const a of agents) await a.stop();
  await worker?.stop();
  for (const r of repos) await r.cleanup();
  await rm(outside, { recursive: true, force: true });
});

describe("the execution boundary through the real interfaces", () => {
  it("a hostile .git/config core.fsmonitor does not run on an auto-approved READ_ONLY git status", async () => {
    const repo = await serve("fsmon", { "README.md": "# hostile\n" });
    await repo.git("config", "core.fsmonitor", `touch '${join(outside, "fsmonitor-ran")}'`);
    await writeFile(join(repo.dir, "README.md"), "# changed\n");
    await waitFor(async () => (await client.agentsOnline()) >= 1, { what: "the agent", timeoutMs: 30_000 });
    const jobId = await client.submit("check git status", "fsmon");
    const done = await client.waitFinished(jobId, 60_000);
    expect(done.status).toBe("SUCCEEDED");
    expect(done.logTail).toContain("README.md");
    expect(await readdir(outside)).toEqual([]);
    // The agent named its containment once at startup.
    expect(agents.at(-1)?.logs()).toMatch(
      /containment: steps run in their own PID namespace|containment: .*process group/,
    );
  });

  it("a plan that writes .git/config is refused at planning, before any agent sees it", async () => {
    const repo = await serve("gitwrite", { "README.md": "# x\n" });
    const before = await readFile(join(repo.dir, ".git", "config"), "utf8");
    const jobId = await client.submit("create file .git/config with fsmonitor", "gitwrite");
    const done = await client.waitFinished(jobId, 60_000);
    expect(done.status).toBe("FAILED");
    expect(done.error).toContain("writing inside .git");
    // Refused while planning: no plan, no execution spec, no agent, no step.
    expect(done.plan).toBeNull();
    expect(done.spec).toBeNull();
    expect(done.agentId).toBeNull();
    expect(done.steps).toEqual([]);
    expect(await readFile(join(repo.dir, ".git", "config"), "utf8")).toBe(before);
  });

  it("READ_ONLY jobs reading .dev.vars and .env fail with a clear reason and the secret is nowhere", async () => {
    const repo = await serve("secrets", { "README.md": "# app\n" });
    await writeFile(join(repo.dir, ".dev.vars"), `API_TOKEN=${SECRET}\n`);
    await writeFile(join(repo.dir, ".env"), `TELEGRAM_BOT_TOKEN=${SECRET}\n`);
    for (const file of [".dev.vars", ".env"]) {
      const jobId = await client.submit(`read the file ${file}`, "secrets");
      const done = await client.waitFinished(jobId, 60_000);
      expect(done.status, file).toBe("FAILED");
      expect(done.error ?? "").toContain("is a secret file");
      const all = await everything(jobId);
      expect(all).toContain("secret file");
      expect(all).not.toContain(SECRET);
    }
    const search = await client.submit("search the code for API_TOKEN", "secrets");
    const found = await client.waitFinished(search, 60_000);
    expect(found.status).toBe("SUCCEEDED");
    expect(await everything(search)).not.toContain(SECRET);
  });

  it("cancel kills a step's setsid() escapee that ignores SIGTERM", async () => {
    const marker = `${2000 + Math.floor(Math.random() * 1e6)}.${process.pid}`;
    const repo = await serve(
      "escape",
      { "escape.sh": `setsid sh -c "trap '' TERM; sleep $1" &\nsleep $1\nwait\n` },
      true,
    );
    await chmod(join(repo.dir, "escape.sh"), 0o755);
    const jobId = await client.submit(`run command sh escape.sh ${marker}`, "escape");
    await client.waitStatus(jobId, ["PLANNED"]);
    expect((await client.call(`/api/jobs/${jobId}/approve`, { json: {} })).status).toBe(200);
    try {
      await waitFor(async () => (await pidsWith(`sleep ${marker}`)).length >= 2, {
        what: "the step and its escapee to run",
        timeoutMs: 60_000,
      });
      expect((await client.call(`/api/jobs/${jobId}/cancel`, { json: {} })).status).toBe(200);
      const done = await client.waitFinished(jobId, 60_000);
      expect(done.status).toBe("CANCELLED");
      await waitFor(async () => (await pidsWith(`sleep ${marker}`)).length === 0, {
        what: "every process of the cancelled step to be gone",
        timeoutMs: 20_000,
      });
    } finally {
      for (const pid of await pidsWith(`sleep ${marker}`)) process.kill(pid, "SIGKILL");
    }
  });
});
