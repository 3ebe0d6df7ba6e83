// Whole flows through the webhook and the JobDO: a job from /task through the agent's progress to
// the final summary (edited into the same message), failure and cancellation, the Logs / Retry /
// More buttons, /retry, group chats, and the per-user "slow down".
import { env } from "cloudflare:test";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import type { FencedAgentMessage, ServerToAgent } from "../protocol/index.ts";
import { type Fence, jobFinished } from "./helpers/frames.ts";
import { type Call, lastJobPlanned, message, post, TelegramScope, textOf } from "./helpers/telegram.ts";
import { pairAgent, TestAgent } from "./helpers/worker.ts";

const USER = { id: 45, is_bot: false, first_name: "Grace", username: "grace" };
const HASTY = { id: 47, is_bot: false, first_name: "Hasty" };
const GROUP = { id: -100200, type: "supergroup" as const, title: "ops" };
const tg = new TelegramScope([USER.id, HASTY.id, GROUP.id], "t2-");

beforeEach(async () => {
  await tg.skip();
});

const stub = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));
const edits = (jobId: string) => (c: Call) => c.method === "editMessageText" && textOf(c).includes(jobId);

let agent: TestAgent | undefined;
afterAll(() => agent?.close());

/**
 * Plays the agent through the real registry: a paired agent connected over a WebSocket takes the
 * job's offer (dispatched as the queue consumer would), accepts it with the offer's lease token
 * and sends each message as a frame; the registry relays them to the JobDO, which checks them.
 */
async function asAgent(jobId: string, messages: ((f: Fence) => FencedAgentMessage)[]): Promise<void> {
  agent ??= await TestAgent.connect((await pairAgent("flows-agent")).token, { maxConcurrency: 16 });
  const view = await stub(jobId).get();
  if (view?.status !== "QUEUED") throw new Error(`job is ${view?.status}, not QUEUED`);
  await stub(jobId).dispatch(view.attempt); // "duplicate" when the queue consumer was first
  let offer: Extract<ServerToAgent, { type: "job_offer" }>;
  do offer = await agent.next("job_offer");
  while (offer.jobId !== jobId);
  const fence = { jobId, attempt: offer.attempt, leaseToken: offer.leaseToken };
  for (const m of messages) agent.send(m(fence));
  const last = messages.at(-1)?.(fence);
  const status = last?.type === "job_finished" ? last.status : "RUNNING";
  await expect.poll(async () => (await stub(jobId).get())?.status).toBe(status);
  expect(agent.received.filter((m) => m.type === "error")).toEqual([]);
}

async function startedJob(intent: string): Promise<{ jobId: string; planningId: number }> {
  await post(message(USER, `/task ${intent}`));
  const jobId = await lastJobPlanned(USER.id);
  const planning = (await tg.calls()).find((c) => c.method === "sendMessage");
  const row = await env.DB.prepare("SELECT message_id AS m FROM jobs WHERE id = ?").bind(jobId).first<{ m: number }>();
  expect(textOf(planning)).toContain("Planning");
  return { jobId, planningId: row?.m ?? 0 };
}

describe("a job's message from plan to summary", () => {
  it("edits progress into the Planning message and ends with the summary and its buttons", async () => {
    const { jobId, planningId } = await startedJob("check git status");
    await tg.waitCall((c) => edits(jobId)(c) && textOf(c).includes("auto-approved"));
    const now = new Date().toISOString();
    await asAgent(jobId, [
      (f) => ({ type: "job_accept", ...f }),
      (f) => ({ type: "step_started", ...f, stepId: "s1", startedAt: now }),
      (f) => ({
        type: "log",
        ...f,
        stepId: "s1",
        seq: 0,
        stream: "stdout",
        data: "On branch <main> & *feature* _x_ [wip]\nnothing to commit\n",
      }),
      (f) => ({ type: "step_finished", ...f, stepId: "s1", outcome: "succeeded", exitCode: 0, durationMs: 42 }),
      (f) => jobFinished(f),
    ]);
    const summary = await tg.waitCall((c) => edits(jobId)(c) && textOf(c).includes("Succeeded"));
    expect(summary.ok).toBe(true);
    expect(summary.params.message_id).toBe(planningId);
    const text = textOf(summary);
    expect(text).toContain("exit 0");
    expect(text).toContain("On branch &lt;main&gt; &amp; *feature* _x_ [wip]");
    expect(JSON.stringify(summary.params.reply_markup)).toContain(`l:${jobId}`);
    expect(JSON.stringify(summary.params.reply_markup)).toContain(`r:${jobId}`);
    // Every edit went to the one message, and Telegram accepted each of them.
    const all = (await tg.take()).filter(edits(jobId));
    expect(all.every((c) => c.params.message_id === planningId && c.ok)).toBe(true);
    expect(all.some((c) => textOf(c).includes("Running"))).toBe(true);

    // Logs button: answered, then the log (escaped); Retry: answered, then a new job.
    await post(tg.callback(USER, `l:${jobId}`, planningId));
    await post(tg.callback(USER, `r:${jobId}`, planningId));
    // (the retried job's own plan edit may arrive meanwhile, from its JobDO's alarm)
    const made = (await tg.take()).filter((c) => c.method !== "editMessageText");
    expect(made.map((c) => c.method)).toEqual([
      "answerCallbackQuery",
      "sendMessage",
      "answerCallbackQuery",
      "sendMessage",
    ]);
    // The stored log starts each attempt with a header line, then the agent's output.
    expect(textOf(made[1])).toMatch(
      /<pre>── attempt 1 on agent \S+ \(agent_[0-9a-f]+\) at [0-9T:.-]+Z ──\nOn branch &lt;main&gt; &amp; \*feature\* _x_ \[wip\]/,
    );
    expect(textOf(made[3])).toContain("Planning");
    const retried = await lastJobPlanned(USER.id);
    expect(retried).not.toBe(jobId);
    expect((await stub(retried).get())?.intent).toBe("check git status");
  });

  it("reports a failure with its reason and exit code", async () => {
    const { jobId } = await startedJob("check git status");
    await asAgent(jobId, [
      (f) => ({ type: "job_accept", ...f }),
      (f) => ({ type: "log", ...f, stepId: "s1", seq: 0, stream: "stderr", data: "fatal: not a git repository\n" }),
      (f) => ({
        type: "step_finished",
        ...f,
        stepId: "s1",
        outcome: "failed",
        exitCode: 128,
        durationMs: 7,
        error: "exit 128",
      }),
      (f) => jobFinished(f, { exitCode: 128, more: { error: "step s1 (git_status) exited with 128 <fatal>" } }),
    ]);
    const summary = await tg.waitCall((c) => edits(jobId)(c) && textOf(c).includes("Failed"));
    expect(summary.ok).toBe(true);
    expect(textOf(summary)).toContain("exit 128");
    expect(textOf(summary)).toMatch(/Reason: .*&lt;fatal&gt;/);
    expect(textOf(summary)).toContain("fatal: not a git repository");
  });

  it("reports a cancellation while running, with who cancelled", async () => {
    const { jobId } = await startedJob("check git status");
    await asAgent(jobId, [(f) => ({ type: "job_accept", ...f })]);
    await post(message(USER, `/cancel ${jobId}`));
    const summary = await tg.waitCall((c) => edits(jobId)(c) && textOf(c).includes("Cancelled"));
    expect(textOf(summary)).toMatch(/Reason: .*45/);
    expect((await stub(jobId).get())?.status).toBe("CANCELLED");
  });
});

describe("buttons, /retry and /jobs", () => {
  it("/retry makes a new job with the same intent; /retry of an unknown job is refused", async () => {
    const { jobId } = await startedJob("show the last 3 commits");
    await tg.skip();
    await post(message(USER, `/retry ${jobId}`));
    await post(message(USER, "/retry job_0000000000notthere"));
    await post(message(USER, "/retry"));
    const made = (await tg.take()).filter((c) => c.method === "sendMessage");
    expect(textOf(made[0])).toContain("Planning");
    expect(textOf(made[1])).toMatch(/don't know that job/);
    expect(textOf(made[2])).toContain("Usage: /retry");
    const again = await lastJobPlanned(USER.id);
    expect(again).not.toBe(jobId);
    expect((await stub(again).get())?.intent).toBe("show the last 3 commits");
  });

  it("/jobs pages with a More button whose callback shows the next page", async () => {
    const count = async () =>
      (
        await env.DB.prepare("SELECT COUNT(*) AS n FROM jobs WHERE user_id = ?")
          .bind(String(USER.id))
          .first<{ n: number }>()
      )?.n ?? 0;
    while ((await count()) < 7) await post(message(USER, "/task list files"));
    await tg.skip();
    await post(message(USER, "/jobs"));
    const first = await tg.waitCall((c) => c.method === "sendMessage" && textOf(c).includes("Your jobs"));
    const data = JSON.stringify(first?.params.reply_markup);
    const cursor = /"(j:[^"]+)"/.exec(data)?.[1];
    expect(cursor).toBeDefined();
    expect(textOf(first).match(/<code>job_/g)).toHaveLength(5);
    await tg.skip();
    await post(tg.callback(USER, cursor ?? ""));
    const made = (await tg.take()).filter((c) => c.method !== "editMessageText");
    const [answer, second] = made;
    expect(answer?.method).toBe("answerCallbackQuery");
    expect(textOf(second)).toContain("<code>job_");
    // Nothing on page two is on page one.
    const ids = (t: string): string[] => t.match(/job_[0-9a-z]+/g) ?? [];
    expect(ids(textOf(second)).filter((id) => ids(textOf(first)).includes(id))).toEqual([]);
  });

  it("a forged cursor is answered and refused politely", async () => {
    await post(tg.callback(USER, "j:AAAAAAAAAAAAAAAA"));
    const made = (await tg.take()).filter((c) => c.method !== "editMessageText");
    expect(made.map((c) => [c.method, c.ok])).toEqual([
      ["answerCallbackQuery", true],
      ["sendMessage", true],
    ]);
    expect(textOf(made[1])).toMatch(/no longer available/);
  });
});

describe("group chats", () => {
  it("answers allowed users' commands addressed to the bot, and nothing else", async () => {
    await post(message(USER, "/help@skynet_bot", GROUP));
    await post(message(USER, "/help@some_other_bot", GROUP));
    await post(message(USER, "good morning, team", GROUP));
    await post(message(USER, "/task@skynet_bot check git status", GROUP));
    const made = (await tg.take()).filter((c) => c.method !== "editMessageText");
    expect(made.map((c) => [c.method, c.params.chat_id])).toEqual([
      ["sendMessage", GROUP.id],
      ["sendMessage", GROUP.id],
    ]);
    expect(textOf(made[0])).toContain("/task");
    expect(textOf(made[1])).toContain("Planning");
    const jobId = await lastJobPlanned(USER.id);
    const plan = await tg.waitCall(edits(jobId));
    expect(plan.params.chat_id).toBe(String(GROUP.id));
  });
});

describe("rate limit", () => {
  it("tells a hasty user to slow down instead of creating the job", async () => {
    const limit = 10;
    for (let i = 0; i <= limit; i++) await post(message(HASTY, `/task check git status ${i}`));
    const made = await tg.take();
    const replies = made.filter((c) => c.method === "sendMessage");
    expect(replies).toHaveLength(limit + 1);
    const slow = made.filter((c) => c.method === "editMessageText" && /slow down/.test(textOf(c)));
    expect(slow).toHaveLength(1);
    expect(slow[0]?.ok).toBe(true);
    const n = await env.DB.prepare("SELECT COUNT(*) AS n FROM jobs WHERE user_id = ?")
      .bind(String(HASTY.id))
      .first<{ n: number }>();
    expect(n?.n).toBe(limit);
  });
});
