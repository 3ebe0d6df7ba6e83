// The result journal at every point where the agent process could die: the real agent against the
// fake registry, each journal write captured as the file a successor process would find, and that
// successor's report (load + finishAbandoned, as restore does) checked against what had happened.
// A step that waits for no server confirmation is journaled once before its spawn; one that
// changes things twice (announced, then running once confirmed).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ExecutionSpec, FencedAgentMessage } from "../../protocol/index.ts";
import { type GitRepo, makeGitRepo } from "../../test/helpers/node/git-repo.ts";
import type { Agent } from "../src/agent.ts";
import { diedBeforeReason, diedReason, finishAbandoned, ResultJournal } from "../src/result-journal.ts";
import { FakeRegistry, spec } from "./fake-registry.ts";
import { step } from "./security-harness.ts";
import { startTestAgent, testConfig } from "./test-agent.ts";

type Saved = Parameters<ResultJournal["save"]>[0];

let server: FakeRegistry;
let repo: GitRepo;
let tmp: string;
const agents: Agent[] = [];
const lines: string[] = [];
const save = ResultJournal.prototype.save;

beforeEach(async () => {
  lines.length = 0;
  tmp = await mkdtemp(join(tmpdir(), "skynet-killpoints-"));
  server = await new FakeRegistry().start();
  repo = await makeGitRepo({ "README.md": "# kill points\n", "a.txt": "alpha\n" });
});

afterEach(async () => {
  vi.restoreAllMocks();
  for (const a of agents.splice(0)) await a.stop(0);
  await server.close();
  await repo.cleanup();
  await rm(tmp, { recursive: true, force: true });
});

type Event = { saved: Saved } | { serverGot: FencedAgentMessage };

/**
 * Runs the job to its end and returns every journal write (as written, in order) and the order in
 * which writes completed and the server received the job's step_started frames. Each write is
 * delayed a little, so a frame sent before its write would reach the server first.
 */
async function runRecorded(job: ExecutionSpec): Promise<{ saves: Saved[]; events: Event[] }> {
  const saves: Saved[] = [];
  const events: Event[] = [];
  vi.spyOn(ResultJournal.prototype, "save").mockImplementation(async function (this: ResultJournal, rec, whileSyncing) {
    if (rec.jobId !== job.jobId) return save.call(this, rec, whileSyncing);
    const snapshot = structuredClone(rec);
    saves.push(snapshot);
    await new Promise((r) => setTimeout(r, 30));
    await save.call(this, rec, whileSyncing);
    events.push({ saved: snapshot });
  });
  const push = server.frames.push.bind(server.frames);
  server.frames.push = (...frames) => {
    for (const f of frames)
      if (f.type === "step_started" && f.jobId === job.jobId) events.push({ serverGot: f as FencedAgentMessage });
    return push(...frames);
  };
  await startTestAgent(testConfig(server.url, repo.dir, { stateDir: join(tmp, "state") }), { lines, agents });
  server.offer(job);
  await server.waitFor("job_finished", (f) => f.jobId === job.jobId);
  return { saves, events };
}

/** What a successor process reports from the journal as this write left it. */
async function successor(rec: Saved, i: number): Promise<FencedAgentMessage[]> {
  const disk = new ResultJournal(join(tmp, `successor-${i}`), "0123456789abcdef", () => undefined);
  await save.call(disk, rec);
  const [loaded] = await disk.load(60_000);
  if (!loaded) throw new Error("the journal record did not load back");
  return loaded.finished ? loaded.frames : [...loaded.frames, ...finishAbandoned(loaded)];
}

/** The job_finished a report ends with: its status, error and each step's outcome (and error). */
function outcome(report: FencedAgentMessage[]) {
  const done = report.at(-1);
  if (done?.type !== "job_finished") throw new Error(`the report does not end with job_finished: ${done?.type}`);
  return {
    status: done.status,
    error: done.result.error,
    steps: done.result.steps.map((s) => [s.stepId, s.outcome, ...(s.error ? [s.error] : [])]),
  };
}

const shape = (r: Saved) => ({
  starting: r.starting,
  running: r.running,
  last: `${r.frames.at(-1)?.type} ${(r.frames.at(-1) as { stepId?: string } | undefined)?.stepId ?? ""}`.trim(),
});

/** Every step_started the server got was on disk (in a completed write) before it arrived. */
function onDiskBeforeSent(events: Event[]): void {
  const onDisk = new Set<string>();
  let seen = 0;
  for (const e of events) {
    if ("saved" in e) for (const f of e.saved.frames) if (f.type === "step_started") onDisk.add(f.stepId);
    if ("serverGot" in e && e.serverGot.type === "step_started") {
      seen += 1;
      expect(onDisk, `step_started ${e.serverGot.stepId} reached the server before it was journaled`).toContain(
        e.serverGot.stepId,
      );
    }
  }
  expect(seen).toBeGreaterThan(0);
}

describe("the journal at each kill point", () => {
  it("READ_ONLY steps: one write before each spawn, and a death after any write is reported truthfully", async () => {
    const job = spec([step("git_status", {}, "READ_ONLY", "s1"), step("git_log", { limit: 3 }, "READ_ONLY", "s2")]);
    const { saves, events } = await runRecorded(job);
    expect(saves.map(shape)).toEqual([
      // Died before this first write: nothing on disk, and no step_started was sent either (the
      // server's lease then lapses and the attempt runs again; nothing of it ran here).
      { starting: null, running: "s1", last: "step_started s1" },
      { starting: null, running: null, last: "step_finished s1" },
      { starting: null, running: "s2", last: "step_started s2" },
      { starting: null, running: null, last: "step_finished s2" },
      { starting: null, running: null, last: "job_finished" },
    ]);
    onDiskBeforeSent(events);
    const reports = await Promise.all(saves.map((s, i) => successor(s, i).then(outcome)));
    const afterS1 = expect.stringContaining("after step s1 finished");
    // Nothing was left to run: the report does not say some step did not.
    const afterS2 =
      "the agent process died after its last step (s2) finished, before the attempt finished; its artifacts may be missing";
    expect(reports).toEqual([
      // From the write on, the step may be running: it may have had effects, never "did not run".
      {
        status: "FAILED",
        error: diedReason("s1"),
        steps: [
          ["s1", "failed", diedReason("s1")],
          ["s2", "skipped"],
        ],
      },
      {
        status: "FAILED",
        error: afterS1,
        steps: [
          ["s1", "succeeded"],
          ["s2", "skipped"],
        ],
      },
      {
        status: "FAILED",
        error: diedReason("s2"),
        steps: [
          ["s1", "succeeded"],
          ["s2", "failed", diedReason("s2")],
        ],
      },
      {
        status: "FAILED",
        error: afterS2,
        steps: [
          ["s1", "succeeded"],
          ["s2", "succeeded"],
        ],
      },
      {
        status: "SUCCEEDED",
        error: undefined,
        steps: [
          ["s1", "succeeded"],
          ["s2", "succeeded"],
        ],
      },
    ]);
  });

  it("a WRITE step keeps both writes: a death before the confirmed spawn is reported as not run", async () => {
    const write = step("write_file", { path: "b.txt", content: "beta\n", overwrite: true }, "WRITE", "s1");
    const job = spec([write]);
    const { saves, events } = await runRecorded(job);
    expect(saves.map(shape)).toEqual([
      { starting: "s1", running: null, last: "step_started s1" },
      { starting: null, running: "s1", last: "step_started s1" },
      { starting: null, running: null, last: "step_finished s1" },
      { starting: null, running: null, last: "job_finished" },
    ]);
    onDiskBeforeSent(events);
    const [announced, running] = await Promise.all(saves.slice(0, 2).map((s, i) => successor(s, i).then(outcome)));
    expect(announced).toEqual({
      status: "FAILED",
      error: diedBeforeReason("s1"),
      steps: [["s1", "skipped", diedBeforeReason("s1")]],
    });
    expect(running).toEqual({ status: "FAILED", error: diedReason("s1"), steps: [["s1", "failed", diedReason("s1")]] });
  });
});
