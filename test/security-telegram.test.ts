// Hostile use of the bot by people who are allowed to use it: another user's job through every
// command and button (refused exactly like a job that does not exist, nothing changed, nothing
// leaked), approval messages that show what will run, bidi text, redelivered updates, and the
// deployment's secrets kept out of chat. Real Update JSON on the webhook, Bot API stand-in.
import { env, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { FencedAgentMessage, JobView } from "../protocol/index.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import { notifyJob } from "../src/notify/notify.ts";
import { type Fence, jobFinished } from "./helpers/frames.ts";
import { insides, storedLog } from "./helpers/job-insides.ts";
import { type Call, lastJobPlanned, message, post, TelegramScope, textOf } from "./helpers/telegram.ts";
import { JOB_EVENTS } from "./helpers/worker.ts";

const OWNER = { id: 45, is_bot: false, first_name: "Owner" };
// Each part uses its own requester, to stay under the per-user task rate limit.
const WRITER = { id: 42, is_bot: false, first_name: "Writer" };
const REPEATER = { id: 46, is_bot: false, first_name: "Repeater" };
const READER = { id: 44, is_bot: false, first_name: "Reader" };
const OTHER = { id: 47, is_bot: false, first_name: "Mallory" };
const ADMIN = { id: 43, is_bot: false, first_name: "Admin" };
// Group chats of this file's own, so the shared Bot API stand-in's calls are this file's alone.
const OWNER_CHAT = { id: -7771001, type: "group" as const };
const OTHER_CHAT = { id: -7771002, type: "group" as const };
const ADMIN_CHAT = { id: -7771003, type: "group" as const };
const tg = new TelegramScope([OWNER_CHAT.id, OTHER_CHAT.id, ADMIN_CHAT.id], "sec-");

const stub = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));
const NO_SUCH_JOB = "job_0000000000nosuchjob";
const SECRETS = ["test-api-token", "test-webhook-secret", "TEST-TOKEN"];

beforeEach(async () => {
  await tg.skip();
});

async function count(sql: string, ...args: unknown[]): Promise<number> {
  const row = await env.DB.prepare(sql)
    .bind(...args)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

/** Everything about a job another user could change: its view and its ledger rows. */
async function snapshot(jobId: string) {
  const job = await stub(jobId).get();
  return {
    status: job?.status,
    updatedAt: job?.updatedAt,
    decidedBy: job?.decidedBy,
    events: await count(`SELECT COUNT(*) AS n FROM ${JOB_EVENTS} WHERE job_id = ?`, jobId),
    jobs: await count("SELECT COUNT(*) AS n FROM jobs"),
    audit: await count("SELECT COUNT(*) AS n FROM audit_log"),
  };
}

let ownersJob: JobView | null = null;

/** A WRITE job of OWNER waiting for approval, its plan message sent (made once, never changed). */
async function ownersPlannedJob(): Promise<JobView> {
  if (ownersJob) return ownersJob;
  ownersJob = await plannedJob(OWNER, "create a new file notes.txt with private plans");
  return ownersJob;
}

async function plannedJob(user: typeof OWNER, intent: string): Promise<JobView> {
  await post(message(user, `/task ${intent}`, OWNER_CHAT));
  const jobId = await lastJobPlanned(user.id);
  await tg.waitCall((c) => c.method === "editMessageText" && textOf(c).includes(jobId));
  const job = await stub(jobId).get();
  if (!job) throw new Error("no job");
  expect(job.status).toBe("PLANNED");
  await tg.skip();
  return job;
}

/** Plays the agent through the JobDO's RPC (the lease taken as the registry would). */
async function asAgent(jobId: string, messages: ((f: Fence) => FencedAgentMessage)[]): Promise<void> {
  await runInDurableObject(stub(jobId), async (instance: JobDO) => {
    const state = insides(instance).load();
    if (!state) throw new Error("no job");
    if (!state.lease) {
      // Dispatched, with the token its offer carries (the accept below takes the lease).
      state.dispatchedAttempt = state.attempt;
      state.leaseToken = "security-test-offer-token";
      insides(instance).save(state);
    }
    const leaseToken = insides(instance).load()?.leaseToken ?? "";
    const fence = { jobId, attempt: state.attempt, leaseToken };
    for (const m of messages) {
      const res = await instance.agentMessage("agent_security", m(fence));
      if (!res.ok) throw new Error(res.error.message);
    }
  });
}

const COMMANDS = ["status", "logs", "artifacts", "approve", "deny", "cancel", "retry", "plan"] as const;

describe("another allowed user's job", () => {
  it.each(COMMANDS)("/%s is answered as for a job that does not exist, and changes nothing", async (cmd) => {
    const job = await ownersPlannedJob();
    const before = await snapshot(job.id);
    await post(message(OTHER, `/${cmd} ${NO_SUCH_JOB}`, OTHER_CHAT));
    const forMissing = await tg.take();
    await post(message(OTHER, `/${cmd} ${job.id}`, OTHER_CHAT));
    const forTheirs = await tg.take();
    // The same single reply in both cases: existence is not leaked.
    expect(forTheirs.map((c) => [c.method, textOf(c)])).toEqual(forMissing.map((c) => [c.method, textOf(c)]));
    expect(forTheirs.map((c) => c.method)).toEqual(["sendMessage"]);
    expect(textOf(forTheirs[0])).toBe("I don't know that job.");
    expect(JSON.stringify(forTheirs)).not.toContain("private plans");
    expect(await snapshot(job.id)).toEqual(before);
    expect(await count("SELECT COUNT(*) AS n FROM jobs WHERE user_id = ?", String(OTHER.id))).toBe(0);
  });

  it.each([
    ["a", "approve"],
    ["c", "cancel"],
    ["l", "logs"],
    ["r", "retry"],
    ["p", "full plan"],
  ])("the %s: (%s) button is answered as for a job that does not exist, and changes nothing", async (prefix) => {
    const job = await ownersPlannedJob();
    const before = await snapshot(job.id);
    await post(tg.callback(OTHER, `${prefix}:${NO_SUCH_JOB}`, 1, OTHER_CHAT.id));
    const forMissing = await tg.take();
    await post(tg.callback(OTHER, `${prefix}:${job.id}`, 1, OTHER_CHAT.id));
    const forTheirs = await tg.take();
    const shape = (calls: Call[]) => calls.map((c) => [c.method, textOf(c), c.params.show_alert]);
    expect(shape(forTheirs)).toEqual(shape(forMissing));
    expect(forTheirs.map((c) => c.method)).toEqual(["answerCallbackQuery"]);
    expect(textOf(forTheirs[0])).toMatch(/does not exist/);
    expect(await snapshot(job.id)).toEqual(before);
    expect(await count("SELECT COUNT(*) AS n FROM jobs WHERE user_id = ?", String(OTHER.id))).toBe(0);
  });

  it("/jobs lists only the user's own jobs; the requester and an admin do see the job", async () => {
    const job = await ownersPlannedJob();
    await post(message(OTHER, "/jobs", OTHER_CHAT));
    const [list] = await tg.take();
    expect(textOf(list)).not.toContain(job.id);
    await post(message(OWNER, `/status ${job.id}`, OWNER_CHAT));
    await post(message(ADMIN, `/status ${job.id}`, ADMIN_CHAT));
    const seen = await tg.take();
    expect(seen).toHaveLength(2);
    for (const c of seen) expect(textOf(c)).toContain(job.id);
  });
});

describe("what the person approving sees", () => {
  it("a write shows its path, size and content; the description is only a label", async () => {
    await post(
      message(OWNER, "/task create a new file .husky/pre-commit with [core] fsmonitor = touch /tmp/pwned", OWNER_CHAT),
    );
    const jobId = await lastJobPlanned(OWNER.id);
    const plan = await tg.waitCall((c) => c.method === "editMessageText" && textOf(c).includes(jobId));
    expect(plan.ok).toBe(true);
    const text = textOf(plan);
    expect(text).toContain("<code>write_file</code> · 🟡 WRITE");
    expect(text).toContain("path: <code>.husky/pre-commit</code>");
    expect(text).toContain("size: <code>35 bytes, 1 line(s); refused if the file exists</code>");
    expect(text).toContain("<pre>[core] fsmonitor = touch /tmp/pwned</pre>");
    expect(text).toMatch(/planner's note: “Create \.husky\/pre-commit”/);
    // The params come before the label.
    expect(text.indexOf("path:")).toBeLessThan(text.indexOf("planner's note"));
    expect(JSON.stringify(plan.params.reply_markup)).toContain(`p:${jobId}`);
  });

  it("a harmless-sounding description cannot hide argv, what a commit stages, or where a push goes", async () => {
    const job = await ownersPlannedJob();
    const lying: JobView = {
      ...job,
      plan: {
        ...(job.plan as NonNullable<JobView["plan"]>),
        proposedSteps: [
          {
            description: "Remove temporary *.tmp files",
            risk: "ADMIN",
            action: "run_command",
            params: { argv: ["rm", "-rf", "src"] },
          },
          {
            description: "Save the typo fix",
            risk: "WRITE",
            action: "git_commit",
            params: { message: "fix typo\nSigned-off" },
          },
          { description: "Back up", risk: "ADMIN", action: "git_push", params: { remote: "evil", branch: "main" } },
        ],
      },
    };
    await notifyJob(env, lying, {});
    const [sent] = await tg.take();
    expect(sent?.ok).toBe(true);
    const text = textOf(sent);
    expect(text).toContain("<code>run_command</code> · 🔴 ADMIN");
    expect(text).toContain("argv: <code>[&quot;rm&quot;,&quot;-rf&quot;,&quot;src&quot;]</code>");
    expect(text).toContain("planner's note: “Remove temporary *.tmp files”");
    expect(text).toContain("message: <code>fix typo↵Signed-off</code>");
    expect(text).toMatch(/stages: <code>EVERYTHING in the workspace first \(git add -A\)/);
    expect(text).toContain("remote: <code>evil</code>");
    expect(text).toContain("branch: <code>main</code>");
  });

  it("a large write stays within Telegram's limit, says it is cut and how to see all of it", async () => {
    const job = await ownersPlannedJob();
    const content = `${"A".repeat(50_000)}THE-END`;
    const big: JobView = {
      ...job,
      plan: {
        ...(job.plan as NonNullable<JobView["plan"]>),
        proposedSteps: [
          { description: "Update docs", risk: "WRITE", action: "write_file", params: { path: "docs/a.md", content } },
        ],
      },
    };
    await notifyJob(env, big, {});
    const [sent] = await tg.take();
    expect(sent?.ok).toBe(true);
    const text = textOf(sent);
    expect(text.length).toBeLessThanOrEqual(4096);
    expect(text).toContain("size: <code>50007 bytes");
    expect(text).toMatch(/more characters; \/plan job_\w+ shows all\]/);
    expect(text).not.toContain("THE-END");
    expect(text).toContain("Needs your approval");
  });

  it("twenty steps of huge argv still make one valid message that names every step and asks for approval", async () => {
    const job = await ownersPlannedJob();
    const huge: JobView = {
      ...job,
      plan: {
        ...(job.plan as NonNullable<JobView["plan"]>),
        proposedSteps: Array.from({ length: 20 }, (_, i) => ({
          description: `<b>step ${i}</b> ${"d".repeat(400)}`,
          risk: "ADMIN" as const,
          action: "run_command",
          params: { argv: Array.from({ length: 64 }, () => `<&>${"a".repeat(4000)}`) },
        })),
      },
    };
    await notifyJob(env, huge, {});
    const [sent] = await tg.take();
    expect(sent?.ok).toBe(true);
    const text = textOf(sent);
    expect(text.length).toBeLessThanOrEqual(4096);
    for (let n = 1; n <= 20; n++) expect(text).toContain(`<b>${n}.</b> <code>run_command</code>`);
    expect(text).toContain("Needs your approval");
  });

  it("/plan sends every step in full as a file", async () => {
    const job = await ownersPlannedJob();
    await post(message(OWNER, `/plan ${job.id}`, OWNER_CHAT));
    const [doc] = await tg.take();
    expect(doc?.method).toBe("sendDocument");
    expect(doc?.ok).toBe(true);
    expect(String(doc?.params.caption)).toContain("every action and its params");
  });

  it("a task with a control character is refused with the reason, and no job is made", async () => {
    const before = await count("SELECT COUNT(*) AS n FROM jobs WHERE user_id = ?", String(WRITER.id));
    await post(message(WRITER, "/task check git status\u0000 and rm -rf .", OWNER_CHAT));
    const reply = await tg.waitCall((c) => c.method === "sendMessage" && c.params.chat_id === OWNER_CHAT.id);
    expect(textOf(reply)).toBe(
      "That task cannot be taken: intent may not contain control characters (other than tab and newline).",
    );
    expect(await count("SELECT COUNT(*) AS n FROM jobs WHERE user_id = ?", String(WRITER.id))).toBe(before);
  });

  it("bidi and zero-width characters are shown as markers, never passed raw", async () => {
    await post(message(WRITER, "/task create a new file invoice\u202Etxt.exe with pay\u200Bme\u2066", OWNER_CHAT));
    const jobId = await lastJobPlanned(WRITER.id);
    const plan = await tg.waitCall((c) => c.method === "editMessageText" && textOf(c).includes(jobId));
    await post(message(WRITER, "/jobs", OWNER_CHAT));
    const calls = [plan, ...(await tg.take())];
    const text = textOf(plan);
    expect(text).toContain("invoice⟨U+202E⟩txt.exe");
    expect(text).toContain("pay⟨U+200B⟩me⟨U+2066⟩");
    for (const c of calls)
      expect(JSON.stringify(c.params)).not.toMatch(/\\u202e|\\u200b|\\u2066|[\u202E\u200B\u2066]/i);
  });
});

describe("a redelivered update", () => {
  it("makes one job and no second reply", async () => {
    const jobsBefore = await count("SELECT COUNT(*) AS n FROM jobs");
    const update = message(REPEATER, "/task check git status", OWNER_CHAT);
    expect((await post(update)).status).toBe(200);
    await lastJobPlanned(REPEATER.id);
    const first = await tg.take();
    expect(first.filter((c) => c.method === "sendMessage")).toHaveLength(1);
    expect((await post(update)).status).toBe(200);
    expect((await post(update)).status).toBe(200);
    expect(await count("SELECT COUNT(*) AS n FROM jobs")).toBe(jobsBefore + 1);
    expect((await tg.take()).filter((c) => c.method !== "editMessageText")).toEqual([]);
    // A new message with the same text is a new task.
    await post(message(REPEATER, "/task check git status", OWNER_CHAT));
    expect(await count("SELECT COUNT(*) AS n FROM jobs")).toBe(jobsBefore + 2);
  });
});

describe("the deployment's secrets", () => {
  it("are redacted from the stored log and every chat message, also when split across chunks", async () => {
    await post(message(READER, "/task read the file .dev.vars", OWNER_CHAT));
    const jobId = await lastJobPlanned(READER.id);
    await tg.waitCall(
      (c) => c.method === "editMessageText" && textOf(c).includes(jobId) && textOf(c).includes("auto-approved"),
    );
    const chunks = [
      "API_TOKEN=test-api-",
      "tok",
      "en\nTELEGRAM_WEBHOOK_SECRET=test-webhook-secret\n",
      "BOT=123456:TEST-TOKEN\nok\n",
    ];
    await asAgent(jobId, [
      (f) => ({ type: "job_accept", ...f }),
      (f) => ({ type: "step_started", ...f, stepId: "s1", startedAt: new Date().toISOString() }),
      ...chunks.map(
        (data, seq) =>
          (f: Fence): FencedAgentMessage => ({ type: "log", ...f, stepId: "s1", seq, stream: "stdout", data }),
      ),
      (f) => ({ type: "step_finished", ...f, stepId: "s1", outcome: "succeeded", exitCode: 0, durationMs: 5 }),
      (f) => jobFinished(f, { action: "read_file" }),
    ]);
    const stored = await runInDurableObject(stub(jobId), (instance: JobDO) => storedLog(insides(instance).ctx.storage));
    for (const s of SECRETS) expect(stored).not.toContain(s);
    expect(stored).toContain("API_TOKEN=[redacted API_TOKEN]\n");
    expect(stored).toContain("ok\n");

    const summary = await tg.waitCall(
      (c) => c.method === "editMessageText" && textOf(c).includes("Succeeded") && textOf(c).includes(jobId),
    );
    await post(message(READER, `/logs ${jobId}`, OWNER_CHAT));
    const logs = await tg.waitCall((c) => c.method === "sendMessage" && textOf(c).includes("📜"));
    for (const c of [summary, logs]) {
      expect(textOf(c)).toContain("[redacted API_TOKEN]");
      for (const s of SECRETS) expect(textOf(c)).not.toContain(s);
    }
  });

  it("are redacted from a chat message whatever produced it", async () => {
    const job = await ownersPlannedJob();
    await notifyJob(
      env,
      { ...job, status: "FAILED", needsApproval: false, error: "boom: Bearer test-api-token refused" },
      {},
    );
    const [sent] = await tg.take();
    expect(textOf(sent)).toContain("Bearer [redacted API_TOKEN] refused");
    expect(textOf(sent)).not.toContain("test-api-token");
  });
});
