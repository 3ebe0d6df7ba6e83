// The seed's scenarios 7.1–7.5, end to end: real Telegram update JSON posted to the Worker's
// webhook (wrangler dev), a real agent process in a real git repository, and the Bot API and
// Messages API stand-ins. Each scenario runs once with the rule planner and once with Claude;
// with Claude, each scripts the model's exact answer (the stand-in knows nothing of SKYNET), and
// one scenario's model plan differs from what the rules would plan. After each test, any Bot API
// call Telegram would have refused, and any request the model stand-in refused or found
// unscripted, fails it.
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { JobView } from "../../protocol/index.ts";
import { RulePlanner } from "../../src/planners/rules.ts";
import type { AgentProcess } from "../helpers/node/agent-process.ts";
import type { ApiClient } from "../helpers/node/api-client.ts";
import type { RecordedCall } from "../helpers/node/fake-telegram.ts";
import { type GitRepo, makeGitRepo } from "../helpers/node/git-repo.ts";
import { processesWithArgv as processes } from "../helpers/node/processes.ts";
import { useStandIns } from "../helpers/node/stand-ins.ts";
import { buttonPress, chatMessage, startTelegramStack, type TelegramStack } from "../helpers/node/telegram-e2e.ts";
import { waitFor } from "../helpers/node/wait.ts";

const USER = { id: 42, is_bot: false, first_name: "Ada", username: "ada" };
const SLOW_SLEEP = "61.7";

const io = useStandIns();
const { tg, claude } = io;

const text = (c: RecordedCall | undefined) => String(c?.params.text ?? "");

const step = (action: string, risk: string, params: Record<string, unknown> = {}) => ({
  description: action,
  action,
  risk,
  params,
});

for (const planner of ["rules", "anthropic"] as const) {
  describe(`seed scenarios (${planner} planner)`, () => {
    let stack: TelegramStack;
    let client: ApiClient;
    let agent: AgentProcess;
    let repo: GitRepo;

    beforeAll(async () => {
      repo = await makeGitRepo({
        "README.md": "# project\n",
        "package.json": JSON.stringify(
          {
            name: "scenario-project",
            version: "1.0.0",
            scripts: {
              test: `if [ -f SLOW ]; then sleep ${SLOW_SLEEP}; fi; echo 'all 3 tests passed'`,
              build: "mkdir -p dist && echo 'build ok' && echo built > dist/out.txt",
            },
          },
          null,
          2,
        ),
        ".gitignore": "dist/\nSLOW\n",
      });
      stack = await startTelegramStack(io, repo, {
        model: planner === "anthropic",
        userId: USER.id,
        name: `scenario-${planner}`,
        allowShell: true,
      });
      ({ client, agent } = stack);
    });

    afterAll(async () => {
      await stack?.stop();
    });

    /** Sends "/task …" as the user would and returns the job it created. */
    async function task(intent: string): Promise<string> {
      if (modelPlan && plannerFor(intent) === "anthropic") {
        claude.script({ kind: "tool", input: { summary: "scripted plan", steps: modelPlan } });
      }
      modelPlan = null;
      const before = new Set(await client.jobIds());
      await stack.post(chatMessage(USER, `/task ${intent}`));
      return client.newJob(before, `the job for "${intent}"`);
    }

    /** Waits for the job's Telegram message to be edited into something matching. */
    function edited(jobId: string, pattern: RegExp): Promise<RecordedCall> {
      return waitFor(
        () =>
          tg.calls
            .filter(
              (c) =>
                c.method === "editMessageText" &&
                text(c).includes(jobId) &&
                pattern.test(text(c)) &&
                // An ended job's summary is final once it starts with its answer.
                (!/Succeeded|Failed|Cancelled/.test(pattern.source) || text(c).startsWith("💬")),
            )
            .at(-1),
        { what: `the message of ${jobId} to match ${pattern}`, timeoutMs: 60_000 },
      );
    }

    async function press(jobId: string, kind: "a" | "c"): Promise<RecordedCall> {
      const since = tg.calls.length;
      const id = `cb-${planner}-${since}`;
      await stack.post(buttonPress(USER, `${kind}:${jobId}`, id));
      return waitFor(
        () =>
          tg.calls.slice(since).find((c) => c.method === "answerCallbackQuery" && c.params.callback_query_id === id),
        { what: "the button press to be answered" },
      );
    }

    /**
     * With Claude, the model's plan for the next task — asked for only when the rules cannot read
     * the task whole (a task they read whole is planned with no model call, key or not).
     */
    let modelPlan: ReturnType<typeof step>[] | null = null;
    function model(...steps: ReturnType<typeof step>[]): void {
      modelPlan = steps;
    }
    const readWhole = (intent: string): boolean =>
      new RulePlanner().read({ jobId: "job_0123456789abcdef", intent, projectId: "default" }).sure;
    const plannerFor = (intent: string) => (planner === "anthropic" && !readWhole(intent) ? "anthropic" : "rules");

    // With a key, every job that ran steps asks Claude for its answer: a stand-in reply for each.
    beforeEach(() => {
      if (planner === "anthropic") claude.always({ kind: "text", text: "scripted answer." });
    });

    async function planned(jobId: string): Promise<JobView> {
      const job = await client.waitStatus(jobId, ["PLANNED", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED"]);
      expect(job.plan?.planner).toBe(plannerFor(job.intent));
      return job;
    }

    it("7.1 check git status in my project: auto-approved, real output shown", async () => {
      await writeFile(join(repo.dir, "untracked-7-1.txt"), "new\n");
      model(step("git_status", "READ_ONLY"));
      const jobId = await task("check git status in my project");
      const job = await client.waitFinished(jobId);
      expect(job.status).toBe("SUCCEEDED");
      expect(job.decidedBy).toBe("auto");
      expect(job.logTail).toContain("untracked-7-1.txt");
      const summary = await edited(jobId, /Succeeded/);
      expect(text(summary)).toContain("untracked-7-1.txt");
      expect(text(summary)).toContain("git_status");
      await rm(join(repo.dir, "untracked-7-1.txt"));
    });

    it("7.2 create a new file test.txt with hello world: waits, Approve pressed, file written", async () => {
      model(step("write_file", "WRITE", { path: "test.txt", content: "hello world" }));
      const jobId = await task("create a new file test.txt with hello world");
      const plan = await planned(jobId);
      expect(plan.status).toBe("PLANNED");
      expect(plan.risk).toBe("WRITE");
      const shown = await edited(jobId, /Needs your approval/);
      expect(JSON.stringify(shown.params.reply_markup)).toContain(`a:${jobId}`);
      const answer = await press(jobId, "a");
      expect(String(answer.params.text)).toMatch(/Approved/);
      const done = await client.waitFinished(jobId);
      expect(done.status).toBe("SUCCEEDED");
      expect(await readFile(join(repo.dir, "test.txt"), "utf8")).toBe("hello world");
      await edited(jobId, /Succeeded/);
      const again = await press(jobId, "a");
      expect(String(again.params.text)).toMatch(/Too late/);
    });

    it("7.3 run all tests on a slow project, cancelled while running: process tree gone", async () => {
      await writeFile(join(repo.dir, "SLOW"), "1");
      const sleep = ["sleep", SLOW_SLEEP];
      try {
        expect(await processes(sleep)).toEqual([]);
        model(step("run_tests", "WRITE"));
        const jobId = await task("run all tests");
        await planned(jobId);
        await press(jobId, "a");
        await waitFor(async () => (await client.job(jobId)).steps[0]?.state === "running", {
          what: "the tests to start",
        });
        // The process the step started, seen running before the cancel.
        const pids = await waitFor(
          async () => {
            const found = await processes(sleep);
            return found.length > 0 ? found : undefined;
          },
          { what: "the slow test process" },
        );
        expect(pids).toHaveLength(1);
        const answer = await press(jobId, "c");
        expect(String(answer.params.text)).toMatch(/Cancelled/);
        const done = await client.waitFinished(jobId);
        expect(done.status).toBe("CANCELLED");
        await waitFor(async () => (await processes(sleep)).length === 0 || undefined, {
          what: "the process tree to be gone",
          timeoutMs: 20_000,
        });
        // The job's lease ended with it: the step is recorded as cancelled by the server (its exit
        // code unknown, the agent's late report refused), and the agent says it killed it.
        expect(done.steps[0]).toMatchObject({ action: "run_tests", state: "cancelled", exitCode: null });
        expect(done.steps[0]?.error).toMatch(/^cancelled by \d+/);
        await waitFor(() => agent.logs().includes(`job ${jobId} attempt 1 cancelled by the server`) || undefined, {
          what: `the agent to report the cancel\n${agent.logs()}`,
        });
        await edited(jobId, /Cancelled/);
      } finally {
        await rm(join(repo.dir, "SLOW"), { force: true });
      }
    });

    it("7.4 run invalid command xyz123: FAILED, the error stored and shown", async () => {
      model(step("run_command", "ADMIN", { argv: ["xyz123"] }));
      const jobId = await task("run invalid command xyz123");
      const plan = await planned(jobId);
      expect(plan.risk).toBe("ADMIN");
      await press(jobId, "a");
      const done = await client.waitFinished(jobId);
      expect(done.status).toBe("FAILED");
      expect(done.error).toContain("command not found: xyz123");
      expect(done.steps[0]).toMatchObject({ state: "failed", exitCode: 127 });
      const summary = await edited(jobId, /Failed/);
      expect(text(summary)).toContain("command not found: xyz123");
      // The ledger is written from the job's outbox, moments after the job itself changed.
      await waitFor(
        async () =>
          (await client.call<{ events: { event: string }[] }>(`/api/jobs/${jobId}/events`)).body.events.some(
            (e) => e.event === "fail",
          ),
        { what: "the ledger's fail event" },
      );
    });

    it("7.5 check git status, run tests, and build project: three steps, logs, artifacts, summary", async () => {
      model(step("git_status", "READ_ONLY"), step("run_tests", "WRITE"), step("build_project", "WRITE"));
      const jobId = await task("check git status, run tests, and build project");
      const plan = await planned(jobId);
      expect(plan.plan?.proposedSteps.map((s) => s.action)).toEqual(["git_status", "run_tests", "build_project"]);
      await press(jobId, "a");
      const done = await client.waitFinished(jobId);
      expect(done.status).toBe("SUCCEEDED");
      expect(done.steps.map((s) => [s.action, s.state, s.exitCode])).toEqual([
        ["git_status", "succeeded", 0],
        ["run_tests", "succeeded", 0],
        ["build_project", "succeeded", 0],
      ]);
      const log = (await client.call<{ lines: string[] }>(`/api/jobs/${jobId}/logs?tail=500`)).body.lines.join("\n");
      expect(log.indexOf("$ git status")).toBeLessThan(log.indexOf("all 3 tests passed"));
      expect(log.indexOf("all 3 tests passed")).toBeLessThan(log.indexOf("build ok"));
      const artifacts = (await client.call<{ artifacts: { name: string }[] }>(`/api/jobs/${jobId}/artifacts`)).body
        .artifacts;
      expect(artifacts.map((a) => a.name).sort()).toEqual(["s2-run_tests.log", "s3-build_project.log"]);
      const summary = await edited(jobId, /Succeeded/);
      expect(text(summary)).toContain("s2-run_tests.log");
      expect(text(summary)).toContain("build ok");
      expect(JSON.stringify(summary.params.reply_markup)).toContain(`l:${jobId}`);
      if (planner === "anthropic") {
        // The rules read the task whole: planned with no model call; Claude only wrote the answer.
        expect(claude.requests.filter((r) => r.body.tools !== undefined)).toEqual([]);
        expect(done.plan?.planner).toBe("rules");
      }
    });

    if (planner === "anthropic") {
      it("7.6 the model's plan is what runs, even where the rules would plan otherwise", async () => {
        // The rules half-read "have a look at the git status" as git_status; the model reads the README.
        model(step("read_file", "READ_ONLY", { path: "README.md" }));
        const jobId = await task("have a look at the git status");
        const done = await client.waitFinished(jobId);
        expect(done.status).toBe("SUCCEEDED");
        expect(done.decidedBy).toBe("auto");
        expect(done.steps.map((s) => [s.action, s.state])).toEqual([["read_file", "succeeded"]]);
        expect(done.logTail).toContain("# project");
        expect(done.logTail).not.toContain("$ git status");
        const summary = await edited(jobId, /Succeeded/);
        expect(text(summary)).toContain("read_file");
        expect(text(summary)).not.toContain("git_status");
      });
    }
  });
}
