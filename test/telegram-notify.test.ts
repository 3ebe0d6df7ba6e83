// notifyJob against the strict Bot API stand-in: the plan, progress and summary edits of a job's
// message, throttling, identical texts never re-sent, 429 with retry_after, a deleted message,
// and a job whose every string is hostile and huge still rendering as valid HTML under 4096.
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { JobView, StepView } from "../protocol/index.ts";
import { EDIT_INTERVAL_MS, NotifyLater, type NotifyMemo, notifyJob } from "../src/notify/notify.ts";
import { jobView } from "./helpers/job-view.ts";
import { failNext, TelegramScope, textOf } from "./helpers/telegram.ts";

const CHAT = 46;
const tg = new TelegramScope([CHAT], "t3-");
const NASTY = `<b>x</b> & "q" *stars* _under_ [link](http://x) </pre>`;

beforeEach(async () => {
  await tg.skip();
});

/** A message in the chat, as the bot's "Planning…" reply would be. */
async function planningMessage(): Promise<number> {
  const res = await fetch(`${env.TELEGRAM_API_ROOT}/bot${env.TELEGRAM_BOT_TOKEN}/sendMessage`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ chat_id: CHAT, text: "🧠 Planning…" }),
  });
  const body = (await res.json()) as { result: { message_id: number } };
  await tg.skip();
  return body.result.message_id;
}

function step(overrides: Partial<StepView> = {}): StepView {
  return {
    stepId: "s1",
    action: "git_status",
    description: "Check git status",
    risk: "READ_ONLY",
    state: "pending",
    exitCode: null,
    startedAt: null,
    durationMs: null,
    error: null,
    ...overrides,
  };
}

function view(messageId: number | null, overrides: Partial<JobView> = {}): JobView {
  const id = "job_0notify0000test01";
  return jobView({
    id,
    status: "PLANNED",
    intent: `create a file ${NASTY}`,
    risk: "WRITE",
    plan: {
      jobId: id,
      userIntentSummary: "create a file",
      proposedSteps: [{ description: `Write ${NASTY}`, risk: "WRITE", action: "write_file" }],
      estimatedRiskLevel: "WRITE",
      expectedArtifacts: [`report <${NASTY}>.txt`],
      planner: "rules",
      createdAt: new Date().toISOString(),
    },
    steps: [step({ action: "write_file", description: `Write ${NASTY}`, risk: "WRITE" })],
    userId: String(CHAT),
    chatId: String(CHAT),
    messageId,
    needsApproval: true,
    ...overrides,
  });
}

const buttons = (c: { params: Record<string, unknown> } | undefined): string[] => {
  const markup = c?.params.reply_markup as { inline_keyboard?: { callback_data: string }[][] } | undefined;
  return (markup?.inline_keyboard ?? []).flat().map((b) => b.callback_data);
};

describe("notifyJob", () => {
  it("edits the Planning message into the plan, and never re-sends the same text", async () => {
    const msgId = await planningMessage();
    const job = view(msgId);
    const memo = await notifyJob(env, job, {});
    const [edit, ...rest] = await tg.take();
    expect(rest).toEqual([]);
    expect(edit).toMatchObject({ method: "editMessageText", ok: true });
    expect(edit?.params).toMatchObject({ chat_id: String(CHAT), message_id: msgId, parse_mode: "HTML" });
    const text = textOf(edit);
    expect(text).toContain("Plan ready");
    expect(text).toContain("&lt;b&gt;x&lt;/b&gt; &amp; &quot;q&quot; *stars* _under_ [link](http://x) &lt;/pre&gt;");
    expect(text).toContain("🟡 WRITE");
    expect(text).toContain("Expected: report &lt;");
    expect(text).toMatch(/Needs your approval/);
    expect(buttons(edit)).toEqual([`a:${job.id}`, `c:${job.id}`, `p:${job.id}`]);
    expect(memo).toMatchObject({ messageId: msgId, lastStatus: "PLANNED" });

    // The same view again: no call at all (Telegram would answer "message is not modified").
    expect(await notifyJob(env, job, memo)).toEqual(memo);
    expect(await tg.take()).toEqual([]);
  });

  it("shows READ_ONLY plans as auto-approved with no Approve button", async () => {
    const msgId = await planningMessage();
    const job = view(msgId, {
      status: "QUEUED",
      risk: "READ_ONLY",
      needsApproval: false,
      decidedBy: "auto",
      steps: [step()],
    });
    await notifyJob(env, job, {});
    const [edit] = await tg.take();
    expect(textOf(edit)).toContain("auto-approved");
    expect(textOf(edit)).toContain("🟢 READ_ONLY");
    expect(buttons(edit)).toEqual([`c:${job.id}`]);
  });

  it("throttles progress edits to one a second but never holds back the final summary", async () => {
    const msgId = await planningMessage();
    const running = view(msgId, {
      status: "RUNNING",
      needsApproval: false,
      decidedBy: "42",
      startedAt: new Date().toISOString(),
      steps: [step({ state: "running", risk: "WRITE" }), step({ stepId: "s2", action: "git_status" })],
    });
    const memo = await notifyJob(env, running, {});
    expect((await tg.take()).map((c) => c.method)).toEqual(["editMessageText"]);

    // The next step starts within the second: the outbox is told to come back later.
    const next: JobView = {
      ...running,
      steps: [step({ state: "succeeded", exitCode: 0, durationMs: 1200 }), step({ stepId: "s2", state: "running" })],
    };
    const later = await notifyJob(env, next, memo).catch((err: unknown) => err);
    expect(later).toBeInstanceOf(NotifyLater);
    expect((later as NotifyLater).retryAfterMs).toBeGreaterThan(0);
    expect((later as NotifyLater).retryAfterMs).toBeLessThanOrEqual(EDIT_INTERVAL_MS);
    expect(await tg.take()).toEqual([]);

    // ...once the second has passed, the newest state goes out.
    const aged: NotifyMemo = { ...memo, lastAt: Date.now() - EDIT_INTERVAL_MS - 1 };
    const memo2 = await notifyJob(env, next, aged);
    const [progress] = await tg.take();
    expect(textOf(progress)).toMatch(/✅ <b>1\.<\/b> <code>git_status<\/code> · 🟢 READ_ONLY · exit 0 · 1\.2 s/);
    expect(textOf(progress)).toContain("planner's note: “Check git status”");
    expect(textOf(progress)).toMatch(/▶️ <b>2\.<\/b>/);

    // The final summary goes out at once even though the last edit was just now.
    const log = Array.from({ length: 200 }, (_, i) => `out ${i} <ok> & *x* _y_ [z]`).join("\n");
    const done: JobView = {
      ...next,
      status: "SUCCEEDED",
      finishedAt: new Date(Date.parse(next.startedAt ?? "") + 3_500).toISOString(),
      steps: [
        step({ state: "succeeded", exitCode: 0, durationMs: 1200 }),
        step({ stepId: "s2", state: "succeeded", exitCode: 0, durationMs: 2300 }),
      ],
      artifacts: [{ name: "s2-report.txt", size: 12, sha256: "a".repeat(64), contentType: "text/plain" }],
      logTail: log,
    };
    await notifyJob(env, done, memo2);
    const [summary] = await tg.take();
    expect(summary?.ok).toBe(true);
    const text = textOf(summary);
    expect(text).toContain("✅ Succeeded");
    expect(text).toContain("exit 0 · 2.3 s");
    expect(text).toContain("⏱ 3.5 s");
    expect(text).toContain("📎 s2-report.txt (12 B)");
    expect(text).toContain("<pre>");
    expect(text).toContain("out 199 &lt;ok&gt; &amp; *x* _y_ [z]</pre>");
    expect(text.length).toBeLessThan(4096);
    expect(buttons(summary)).toEqual([`l:${done.id}`, `r:${done.id}`]);
  });

  it("reports failures and cancellations with their reason", async () => {
    const msgId = await planningMessage();
    const failed = view(msgId, {
      status: "FAILED",
      needsApproval: false,
      error: "step s1 failed: exit 127 <xyz123: not found> & more",
      steps: [step({ state: "failed", exitCode: 127, durationMs: 40, error: "not found" })],
      logTail: "sh: xyz123: command not found",
    });
    let memo = await notifyJob(env, failed, {});
    const [f] = await tg.take();
    expect(textOf(f)).toContain("❌ Failed");
    expect(textOf(f)).toContain("Reason: step s1 failed: exit 127 &lt;xyz123: not found&gt; &amp; more");
    expect(textOf(f)).toContain("exit 127");
    expect(buttons(f)).toEqual([`l:${failed.id}`, `r:${failed.id}`]);

    memo = await notifyJob(env, { ...failed, status: "CANCELLED", error: "cancelled by 42" }, memo);
    const [c] = await tg.take();
    expect(textOf(c)).toContain("⛔ Cancelled");
    expect(textOf(c)).toContain("Reason: cancelled by 42");
    expect(memo.lastStatus).toBe("CANCELLED");
  });

  it("throws on 429 with Telegram's retry_after and succeeds on the retry", async () => {
    const msgId = await planningMessage();
    const job = view(msgId);
    await failNext("editMessageText", CHAT, {
      errorCode: 429,
      description: "Too Many Requests: retry after 7",
      retryAfter: 7,
    });
    const err = await notifyJob(env, job, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotifyLater);
    expect((err as NotifyLater).retryAfterMs).toBe(7000);
    const memo = await notifyJob(env, job, {});
    expect((await tg.take()).map((c) => c.method)).toEqual(["editMessageText", "editMessageText"]);
    expect(memo.lastStatus).toBe("PLANNED");
  });

  it("throws on Telegram's 5xx so the outbox retries; treats 'message is not modified' as done", async () => {
    const msgId = await planningMessage();
    const job = view(msgId);
    tg.expectRefusal(/message is not modified/);
    await failNext("editMessageText", CHAT, { errorCode: 502, description: "Bad Gateway" });
    await expect(notifyJob(env, job, {})).rejects.toThrow(/Bad Gateway/);
    const memo = await notifyJob(env, job, {});
    // A memo lost (e.g. the DO's write failed) means the same edit again: Telegram says "not modified".
    expect(await notifyJob(env, job, {})).toMatchObject({ messageId: memo.messageId, lastStatus: "PLANNED" });
    const made = await tg.take();
    expect(made.map((c) => [c.method, c.ok])).toEqual([
      ["editMessageText", false],
      ["editMessageText", true],
      ["editMessageText", false],
    ]);
    expect(made[2]?.error).toMatch(/message is not modified/);
  });

  it("sends a new message when the old one was deleted, and remembers it", async () => {
    const job = view(999_999);
    tg.expectRefusal(/message to edit not found/);
    const memo = await notifyJob(env, job, {});
    const made = await tg.take();
    expect(made.map((c) => c.method)).toEqual(["editMessageText", "sendMessage"]);
    expect(memo.messageId).toBeGreaterThan(0);
    expect(memo.messageId).not.toBe(999_999);
    await notifyJob(env, { ...job, status: "CANCELLED", error: "denied by 42" }, memo);
    const [edit] = await tg.take();
    expect(edit).toMatchObject({ method: "editMessageText", ok: true, params: { message_id: memo.messageId } });
  });

  it("does nothing for jobs without a chat (made through the API)", async () => {
    const memo = await notifyJob(env, view(null, { chatId: null }), {});
    expect(memo).toEqual({});
    expect(await tg.take()).toEqual([]);
  });

  it("keeps a huge, hostile job under 4096 characters and valid HTML", async () => {
    const msgId = await planningMessage();
    const long = `${NASTY} `.repeat(30).slice(0, 500);
    const steps = Array.from({ length: 20 }, (_, i) =>
      step({
        stepId: `s${i + 1}`,
        action: "run_command",
        description: long,
        risk: "ADMIN",
        state: "failed",
        exitCode: 1,
        durationMs: 65_000,
      }),
    );
    const job = view(msgId, {
      status: "FAILED",
      needsApproval: false,
      intent: `${NASTY} `.repeat(100).slice(0, 2000),
      steps,
      error: `${NASTY}\n`.repeat(100).slice(0, 4000),
      artifacts: Array.from({ length: 40 }, (_, i) => ({
        name: `artifact-${i}-with-a-long-name.txt`,
        size: 1,
        sha256: "b".repeat(64),
        contentType: "text/plain",
      })),
      logTail: Array.from({ length: 10_000 }, (_, i) => `line ${i} <tag> & *x* _y_ [z]`).join("\n"),
    });
    const memo = await notifyJob(env, job, {});
    const [edit] = await tg.take();
    // The stand-in refuses bad HTML and over-long text just as Telegram does: it accepted this.
    expect(edit).toMatchObject({ method: "editMessageText", ok: true });
    expect(String(edit?.params.text).length).toBeLessThanOrEqual(4096);
    expect(memo.lastStatus).toBe("FAILED");
  });
});
