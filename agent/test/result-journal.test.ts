// Results outlive the agent process: the real agent CLI (a child process) against a real local
// registry (fake-registry.ts), SIGKILLed and started again on the same state directory.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ExecutionStep } from "../../protocol/index.ts";
import { type AgentProcess, startAgent } from "../../test/helpers/node/agent-process.ts";
import { type GitRepo, makeGitRepo } from "../../test/helpers/node/git-repo.ts";
import { waitFor } from "../../test/helpers/node/wait.ts";
import { agentKey, diedBeforeReason, diedReason, ResultJournal } from "../src/result-journal.ts";
import { FakeRegistry, spec, TOKEN } from "./fake-registry.ts";

let server: FakeRegistry;
let repo: GitRepo;
let tmp: string;
const procs: AgentProcess[] = [];

/** The real CLI, with its journal in this test's own state directory. */
async function agent(): Promise<AgentProcess> {
  const connectionsBefore = server.connections;
  const p = await startAgent({
    url: server.url,
    token: TOKEN,
    workspace: repo.dir,
    allowShell: true,
    name: "journal-agent",
    env: { SKYNET_AGENT_STATE_DIR: join(tmp, "state") },
  });
  procs.push(p);
  await waitFor(() => server.connections > connectionsBefore, { what: `the agent to connect\n${p.logs()}` });
  return p;
}

const journalDir = () => join(tmp, "state", agentKey(server.url, TOKEN));
const shell = (script: string): ExecutionStep => ({
  id: "s1",
  action: "run_command",
  params: { argv: ["sh", "-c", script] },
  risk: "ADMIN",
  timeoutS: 120,
});
const traceLines = async (path: string) =>
  (await readFile(path, "utf8").catch(() => "")).split("\n").filter((l) => l.length > 0);

beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), "skynet-journal-"));
  server = await new FakeRegistry().start();
  repo = await makeGitRepo({ "README.md": "# journal\n" });
});

afterEach(async () => {
  for (const p of procs.splice(0)) await p.kill();
  await server.close();
  await repo.cleanup();
  await rm(tmp, { recursive: true, force: true });
});

describe("the result journal", () => {
  it("a result finished while the server was down reaches it after the agent is SIGKILLed and restarted; the command ran once", async () => {
    const first = await agent();
    const trace = join(tmp, "trace");
    const job = spec([shell(`echo begun; sleep 1; echo ran >> '${trace}'; echo done`)]);
    server.offer(job);
    // The step has started (an ADMIN step starts once the server confirmed its step_started).
    await server.waitFor("log", (f) => f.jobId === job.jobId && f.data.includes("begun"));
    await server.down();
    // The command completes while the server is unreachable; its result is journaled on disk.
    await waitFor(async () => (await traceLines(trace)).length === 1, { what: "the command to run" });
    await waitFor(
      async () => {
        const files = await readdir(journalDir()).catch(() => []);
        const mine = files.find((f) => f.startsWith(job.jobId));
        return mine && (await readFile(join(journalDir(), mine), "utf8")).includes('"job_finished"');
      },
      { what: "the result to be journaled" },
    );
    await first.kill();
    expect(server.of("job_finished", job.jobId)).toEqual([]);
    await server.up();
    const second = await agent();
    const done = await server
      .waitFor("job_finished", (f) => f.jobId === job.jobId, 20_000)
      .catch((err: Error) => {
        throw new Error(`${err.message}\n${second.logs()}`);
      });
    expect(done.status).toBe("SUCCEEDED");
    expect(done.result.steps[0]?.outcome).toBe("succeeded");
    expect(await traceLines(trace)).toEqual(["ran"]);
    // Once a keepalive after it was answered (and the linger passed), the file goes.
    await waitFor(async () => (await readdir(journalDir())).length === 0, {
      what: "the delivered result's file to be deleted",
      timeoutMs: 45_000,
    });
    // An offer of that attempt under a new lease gets the journaled result, never a second run.
    server.offer(job, "lease-token-reoffered-0123456789");
    await server.waitFor(
      "job_finished",
      (f) => f.jobId === job.jobId && f.leaseToken.startsWith("lease-token-reoffered"),
    );
    expect(await traceLines(trace)).toEqual(["ran"]);
  }, 120_000);

  it("a step that started and died with the agent is reported FAILED, saying so, by the restarted agent", async () => {
    const first = await agent();
    const job = spec([shell("echo begun; sleep 60")]);
    server.offer(job);
    await server.waitFor("log", (f) => f.jobId === job.jobId && f.data.includes("begun"));
    await first.kill();
    await agent();
    const done = await server.waitFor("job_finished", (f) => f.jobId === job.jobId, 20_000);
    expect(done.status).toBe("FAILED");
    expect(done.result.error).toBe(diedReason("s1"));
    expect(done.result.steps).toEqual([
      { stepId: "s1", action: "run_command", outcome: "failed", exitCode: null, error: diedReason("s1") },
    ]);
    const finished = server.of("step_finished", job.jobId);
    expect(finished.map((f) => [f.outcome, f.error])).toEqual([["failed", diedReason("s1")]]);
  }, 60_000);

  it("a step announced but not yet started (the server never confirmed it) is reported as not run after a SIGKILL", async () => {
    const first = await agent();
    await waitFor(() => first.logs().includes("registered as"), { what: "the agent to be welcomed" });
    const trace = join(tmp, "trace");
    const job = spec([shell(`echo ran >> '${trace}'`)]);
    // The server hears nothing more: the ADMIN step waits for its step_started to be confirmed.
    server.silent = true;
    server.offer(job);
    await waitFor(async () => (await readdir(journalDir()).catch(() => [])).some((f) => f.startsWith(job.jobId)), {
      what: `the announced step to be journaled\n${first.logs()}`,
    });
    await first.kill();
    server.silent = false;
    await agent();
    const done = await server.waitFor("job_finished", (f) => f.jobId === job.jobId, 20_000);
    expect(done.status).toBe("FAILED");
    expect(done.result.error).toBe(diedBeforeReason("s1"));
    expect(done.result.steps).toEqual([
      { stepId: "s1", action: "run_command", outcome: "skipped", exitCode: null, error: diedBeforeReason("s1") },
    ]);
    expect(await traceLines(trace)).toEqual([]);
  }, 60_000);

  it("corrupt and foreign journal files are skipped with a log line and removed", async () => {
    const dir = join(tmp, "state", agentKey(`http://127.0.0.1:${new URL(server.url).port}`, TOKEN));
    await mkdir(dir, { recursive: true });
    const corrupt = join(dir, "job_0123456789ab.1.json");
    const foreignJob = { ...spec([shell("echo never")]), jobId: "job_0123456789cd" };
    const foreign = join(dir, "job_0123456789cd.1.json");
    const misnamed = join(dir, "notes.txt");
    await writeFile(corrupt, '{"v":1,"agent":');
    // Well formed, but another agent identity's: never replayed under this one's token.
    const record = {
      v: 1,
      agent: "0000000000000000",
      jobId: foreignJob.jobId,
      attempt: 1,
      leaseToken: "lease-token-0123456789abcdef",
      spec: foreignJob,
      frames: [],
      starting: null,
      running: "s1",
      finished: false,
      at: Date.now(),
    };
    await writeFile(foreign, JSON.stringify(record));
    await writeFile(misnamed, "hello");
    const p = await agent();
    await waitFor(async () => (await readdir(dir)).length === 0, { what: `the bad files to be removed\n${p.logs()}` });
    const logs = p.logs();
    expect(logs).toMatch(/skipped and removed job_0123456789ab\.1\.json: not valid JSON/);
    expect(logs).toMatch(/skipped and removed job_0123456789cd\.1\.json: written by another agent identity/);
    expect(logs).toMatch(/skipped and removed notes\.txt: not a journal file name/);
    await server.waitFor("hello");
    expect(server.frames.filter((f) => "jobId" in f)).toEqual([]);
  }, 60_000);

  it("never grows past its cap: the oldest record is dropped, with a log line", async () => {
    const said: string[] = [];
    const journal = new ResultJournal(join(tmp, "capped"), "0123456789abcdef", (l) => said.push(l), 3);
    const jobs = [1, 2, 3, 4].map(() => spec([shell("true")]));
    for (const job of jobs) {
      await journal.save({
        jobId: job.jobId,
        attempt: 1,
        leaseToken: "lease-token-0123456789abcdef",
        spec: job,
        frames: [],
        starting: null,
        running: "s1",
        finished: false,
      });
    }
    const files = (await readdir(journal.dir)).sort();
    expect(files).toEqual(
      jobs
        .slice(1)
        .map((j) => `${j.jobId}.1.json`)
        .sort(),
    );
    expect(said).toEqual([`journal full (3 files): dropped the oldest, ${jobs[0]?.jobId}.1.json`]);
    // A new process reads back exactly what is there.
    const again = new ResultJournal(join(tmp, "capped"), "0123456789abcdef", (l) => said.push(l), 3);
    expect((await again.load(60_000)).map((r) => r.jobId).sort()).toEqual(
      jobs
        .slice(1)
        .map((j) => j.jobId)
        .sort(),
    );
  });
});
