// The hot path on wrangler dev with a real agent process: a short READ_ONLY job's frames reach
// its JobDO in batches (counted by the JobDO's own operation counters, not by timing), and a
// few megabytes of varied output are stored byte-exact in the archived log.
import { createHash, randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent } from "../helpers/node/agent-process.ts";
import { ApiClient } from "../helpers/node/api-client.ts";
import { type GitRepo, makeGitRepo } from "../helpers/node/git-repo.ts";
import { waitFor } from "../helpers/node/wait.ts";
import { type RunningWorker, startWorker } from "../helpers/node/wrangler-dev.ts";

let worker: RunningWorker;
let client: ApiClient;
let repo: GitRepo;
let agent: AgentProcess;

beforeAll(async () => {
  worker = await startWorker({ vars: { SKYNET_LOG_LEVEL: "warn" } });
  client = new ApiClient(worker.url, worker.apiToken);
  repo = await makeGitRepo({ "README.md": "# fast path\n" });
  const { token } = await client.pair("fast");
  agent = await startAgent({ url: worker.url, token, workspace: repo.dir, projectId: "fast", allowShell: true });
  await waitFor(async () => (await client.agentsOnline()) === 1, { what: "the agent online" });
});

afterAll(async () => {
  await agent?.kill();
  await worker?.stop();
  await repo?.cleanup();
});

const ops = async (jobId: string) =>
  (await client.call<{ ops: Record<string, number> }>(`/api/jobs/${jobId}/ops`)).body.ops;

describe("the fast path", () => {
  it("a short READ_ONLY job's frames reach the JobDO in at most four calls, applied once", async () => {
    const jobId = await client.submit("check git status", "fast");
    const done = await client.waitFinished(jobId);
    expect(done.status).toBe("SUCCEEDED");
    expect(done.steps.map((s) => s.state)).toEqual(["succeeded"]);
    const counts = await ops(jobId);
    const single = counts["rpc.agentMessage"] ?? 0;
    const batches = counts["rpc.agentBatch"] ?? 0;
    // Frame by frame this is six calls: accept, step_started, the command line, its output,
    // step_finished, job_finished. Batched: the accept at once, then what gathered within the
    // agent's few-ms linger — the start goes ahead when the command outlasts it, the command
    // line too when the output comes later still — and the rest, result included, in one batch.
    expect(batches).toBeGreaterThanOrEqual(1);
    expect(single + batches).toBeLessThanOrEqual(4);
    const log = await fetch(`${worker.url}/api/jobs/${jobId}/log`, {
      headers: { Authorization: `Bearer ${worker.apiToken}` },
    });
    const text = await log.text();
    expect(text.split("On branch")).toHaveLength(2);
  });

  it("dates a short job's RUNNING when the agent took it: before SUCCEEDED, though one batch carried both", async () => {
    const jobId = await client.submit("check git status", "fast");
    expect((await client.waitFinished(jobId)).status).toBe("SUCCEEDED");
    type Event = { to: string; at: string; detail: { heldMs?: number } | null };
    const events = await waitFor(
      async () => {
        const { body } = await client.call<{ events: Event[] }>(`/api/jobs/${jobId}/events`);
        return body.events.some((e) => e.to === "SUCCEEDED") ? body.events : undefined;
      },
      { what: "the job's SUCCEEDED event in the ledger" },
    );
    const at = (to: string) => Date.parse(events.find((e) => e.to === to)?.at ?? "");
    // The accept waited on the agent while the command ran (the batcher's linger), and the
    // server took it back by that much: RUNNING no longer carries the result's arrival time.
    expect(at("RUNNING")).toBeLessThan(at("SUCCEEDED"));
    expect(at("QUEUED")).toBeLessThanOrEqual(at("RUNNING"));
    expect(events.find((e) => e.to === "RUNNING")?.detail?.heldMs).toBeGreaterThan(0);
  });

  it("stores 4 MB of varied output byte-exact", async () => {
    // Hex of random bytes in lines: nothing repeats, so a lost, doubled or reordered chunk shows.
    const lines = Array.from({ length: 32 * 1024 }, () => `${randomBytes(63).toString("hex")}\n`);
    const content = lines.join("");
    await writeFile(join(repo.dir, "big.txt"), content);
    const res = await client.call<{ jobId: string }>("/execute", {
      json: {
        executionSpec: {
          jobId: `job_${Date.now().toString(36)}${randomBytes(6).toString("hex")}`,
          attempt: 1,
          provider: "openclaw",
          projectId: "fast",
          timeoutS: 600,
          steps: [
            { id: "s1", action: "run_command", params: { argv: ["cat", "big.txt"] }, risk: "ADMIN", timeoutS: 600 },
          ],
        },
      },
    });
    expect(res.status).toBeLessThan(300);
    const jobId = res.body.jobId;
    expect((await client.waitFinished(jobId, 120_000)).status).toBe("SUCCEEDED");
    const url = `${worker.url}/api/jobs/${jobId}/log`;
    const auth = { headers: { Authorization: `Bearer ${worker.apiToken}` } };
    await waitFor(async () => (await fetch(url, auth)).headers.get("X-Skynet-Log") === "archived", {
      what: "the archived log",
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    const stored = await (await fetch(url, auth)).text();
    const start = stored.indexOf(lines[0] as string);
    expect(start).toBeGreaterThan(0);
    const body = stored.slice(start, start + content.length);
    expect(createHash("sha256").update(body).digest("hex")).toBe(createHash("sha256").update(content).digest("hex"));
    // Nothing of the output after it either (a chunk stored twice would follow here).
    expect(stored.slice(start + content.length)).not.toMatch(/[0-9a-f]{126}\n/);
  });
});
