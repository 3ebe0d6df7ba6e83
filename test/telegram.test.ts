// The Telegram webhook with real update JSON, against the Bot API stand-in: every call grammY
// makes is recorded by the stand-in and asserted here.
import { env, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { JobDO } from "../src/jobs/job-do.ts";
import { insides } from "./helpers/job-insides.ts";
import {
  message,
  nextUpdateId,
  lastJobPlanned as plannedFor,
  post,
  SECRET,
  TelegramScope,
  textOf,
} from "./helpers/telegram.ts";
import { api } from "./helpers/worker.ts";

const OWNER = { id: 42, is_bot: false, first_name: "Ada", username: "ada" };
const STRANGER = { id: 666, is_bot: false, first_name: "Eve", username: "eve" };
const GROUP = { id: -100123, type: "group" as const };

const tg = new TelegramScope([OWNER.id, STRANGER.id, GROUP.id], "t1-");
const take = () => tg.take();
const waitCall = tg.waitCall.bind(tg);
const callback = tg.callback.bind(tg);
const lastJobPlanned = () => plannedFor(OWNER.id);

beforeEach(async () => {
  await tg.skip();
});

describe("webhook security", () => {
  it("refuses a forged or missing secret with 401 and makes no Bot API call", async () => {
    expect((await post(message(OWNER, "/help"), "wrong-secret")).status).toBe(401);
    expect((await post(message(OWNER, "/help"), null)).status).toBe(401);
    expect(await take()).toEqual([]);
  });

  it("refuses a stranger once, politely, and audits it", async () => {
    expect((await post(message(STRANGER, "/task check git status"))).status).toBe(200);
    expect((await post(message(STRANGER, "/task check git status again"))).status).toBe(200);
    const made = await take();
    expect(made.map((c) => c.method)).toEqual(["sendMessage"]);
    expect(textOf(made[0])).toMatch(/private bot/);
    const audit = await env.DB.prepare("SELECT COUNT(*) AS n FROM audit_log WHERE actor = 'telegram:666'").first<{
      n: number;
    }>();
    expect(audit?.n).toBe(1);
    const jobs = await env.DB.prepare("SELECT COUNT(*) AS n FROM jobs WHERE user_id = '666'").first<{ n: number }>();
    expect(jobs?.n).toBe(0);
  });

  it("ignores a stranger's group message and answers bad JSON with 400", async () => {
    await post(message(STRANGER, "hello all", GROUP));
    expect(await take()).toEqual([]);
    const res = await api("/telegram/webhook", {
      method: "POST",
      body: "{nope",
      headers: { "X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json" },
      token: null,
    });
    expect(res.status).toBe(400);
  });
});

describe("commands", () => {
  it("/help, unknown commands, stickers and edited messages", async () => {
    await post(message(OWNER, "/help"));
    await post(message(OWNER, "/frobnicate now"));
    await post({
      update_id: nextUpdateId(),
      message: {
        message_id: 900,
        from: OWNER,
        chat: { id: 42, type: "private" },
        date: 1,
        sticker: {
          file_id: "x",
          file_unique_id: "y",
          type: "regular",
          width: 1,
          height: 1,
          is_animated: false,
          is_video: false,
        },
      },
    });
    await post({
      update_id: nextUpdateId(),
      edited_message: {
        message_id: 1,
        from: OWNER,
        chat: { id: 42, type: "private" },
        date: 1,
        edit_date: 2,
        text: "/task push everything",
      },
    });
    const made = await take();
    expect(made.map((c) => c.method)).toEqual(["sendMessage", "sendMessage", "sendMessage"]);
    expect(textOf(made[0])).toContain("/task");
    expect(made[0]?.params.parse_mode).toBe("HTML");
    expect(textOf(made[1])).toMatch(/don't know that command/);
    expect(textOf(made[2])).toMatch(/only understand text/);
    const jobs = await env.DB.prepare("SELECT COUNT(*) AS n FROM jobs WHERE intent = 'push everything'").first<{
      n: number;
    }>();
    expect(jobs?.n).toBe(0);
  });

  it("gives usage help on bad arguments", async () => {
    await post(message(OWNER, "/task"));
    await post(message(OWNER, "/approve not-a-job"));
    await post(message(OWNER, "/logs job_0123456789abcdef lots"));
    const made = await take();
    expect(made.map(textOf)).toEqual([
      expect.stringContaining("Usage"),
      expect.stringContaining("Usage: /approve"),
      expect.stringContaining("Usage: /logs"),
    ]);
  });

  it("/task replies at once, then the plan edits that message; READ_ONLY is auto-approved", async () => {
    await post(message(OWNER, "/task check git status"));
    const first = await take();
    expect(first.map((c) => c.method)).toEqual(["sendMessage"]);
    expect(textOf(first[0])).toContain("Planning");
    const jobId = await lastJobPlanned();
    const last = await waitCall((c) => c.method === "editMessageText" && textOf(c).includes("auto-approved"));
    expect(textOf(last)).toContain(jobId);
    expect(textOf(last)).toContain("auto-approved");
    expect(textOf(last)).toContain("git_status");
  });

  it("WRITE plans wait with Approve/Cancel buttons; a stranger to the job cannot approve; a second press is answered", async () => {
    await post(message(OWNER, "/task create a new file notes.txt with <b>bold</b> & *stars* _under_ [link]"));
    const jobId = await lastJobPlanned();
    const plan = await waitCall((c) => c.method === "editMessageText" && textOf(c).includes(jobId));
    await take();
    expect(textOf(plan)).toContain("&lt;b&gt;bold&lt;/b&gt; &amp; *stars* _under_ [link]");
    const keyboard = JSON.stringify(plan?.params.reply_markup);
    expect(keyboard).toContain(`a:${jobId}`);
    expect(keyboard).toContain(`c:${jobId}`);

    // 44 may use the bot but did not ask for this job and is not an admin: told it does not exist.
    await post(callback({ ...OWNER, id: 44, first_name: "Bob" }, `a:${jobId}`));
    const refused = (await take()).find((c) => c.method === "answerCallbackQuery");
    expect(String(refused?.params.text)).toMatch(/does not exist/);
    expect((await env.JOB.get(env.JOB.idFromName(jobId)).get())?.status).toBe("PLANNED");
    await post(callback(OWNER, `a:${jobId}`));
    const approved = await take();
    const answer = approved.find((c) => c.method === "answerCallbackQuery");
    expect(String(answer?.params.text)).toMatch(/Approved/);
    await post(callback(OWNER, `a:${jobId}`));
    const again = (await take()).find((c) => c.method === "answerCallbackQuery");
    expect(String(again?.params.text)).toMatch(/Too late/);
    const status = await env.JOB.get(env.JOB.idFromName(jobId)).get();
    expect(status?.status).toBe("QUEUED");
  });

  it("answers a callback for a job that does not exist and a forged button", async () => {
    await post(callback(OWNER, "a:job_0000000000nosuchjob"));
    await post(callback(OWNER, "x:rm -rf"));
    const made = await take();
    expect(made.map((c) => [c.method, c.params.show_alert])).toEqual([
      ["answerCallbackQuery", true],
      ["answerCallbackQuery", true],
    ]);
    expect(String(made[0]?.params.text)).toMatch(/does not exist/);
  });

  it("/cancel, /status and /jobs", async () => {
    await post(message(OWNER, "/task run the tests"));
    const jobId = await lastJobPlanned();
    await take();
    await post(message(OWNER, `/status ${jobId}`));
    await post(message(OWNER, `/cancel ${jobId}`));
    await post(message(OWNER, "/jobs"));
    const made = await take();
    const texts = made.filter((c) => c.method === "sendMessage").map(textOf);
    expect(texts[0]).toContain("Plan ready");
    expect(texts[1]).toMatch(/Cancelled; nothing ran/);
    expect(texts.at(-1)).toContain(jobId);
    expect((await env.JOB.get(env.JOB.idFromName(jobId)).get())?.status).toBe("CANCELLED");
  });

  it("escapes log output and sends a 10,000-line log as a document", async () => {
    await post(message(OWNER, "/task check git status"));
    const jobId = await lastJobPlanned();
    await runInDurableObject(env.JOB.get(env.JOB.idFromName(jobId)), (i: JobDO) => {
      const lines = Array.from({ length: 10_000 }, (_, n) => `line ${n} <tag> & *x* _y_ [z]`).join("\n");
      insides(i).logs.append({ attempt: 1, seq: 0, stepId: "s1", stream: "stdout", data: `${lines}\n` });
    });
    await take();
    await post(message(OWNER, `/logs ${jobId} 5`));
    await post(message(OWNER, `/logs ${jobId} 10000`));
    const made = await take();
    expect(made.map((c) => c.method)).toEqual(["sendMessage", "sendDocument"]);
    expect(textOf(made[0])).toContain("line 9999 &lt;tag&gt; &amp; *x* _y_ [z]");
    const doc = made[1]?.params.document as { filename: string; text: string };
    expect(doc.filename).toBe(`${jobId}.log`);
    expect(doc.text.split("\n")).toHaveLength(10_000);
  });

  it("/task @project targets another workspace, and refuses a malformed project name", async () => {
    await post(message(OWNER, "/task @api-server run the tests"));
    const jobId = await lastJobPlanned();
    const job = await env.JOB.get(env.JOB.idFromName(jobId)).get();
    expect(job).toMatchObject({ projectId: "api-server", intent: "run the tests" });
    await take();
    await post(message(OWNER, "/task @../etc check git status"));
    const made = await take();
    expect(textOf(made[0])).toMatch(/Project names are/);
  });

  it("/artifacts sends each artifact as a document", async () => {
    await post(message(OWNER, "/task check git status"));
    const jobId = await lastJobPlanned();
    const body = "3 passed <ok> & done\n";
    const sha = [...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body)))]
      .map((b) => b.toString(16).padStart(2, "0"))
      .join("");
    await env.ARCHIVE.put(`artifacts/jobs/${jobId}/s1-report.txt`, body, { customMetadata: { sha256: sha } });
    await take();
    await post(message(OWNER, `/artifacts ${jobId}`));
    await post(message(OWNER, "/artifacts job_0000000000notthere"));
    const made = await take();
    expect(made.map((c) => c.method)).toEqual(["sendDocument", "sendMessage"]);
    const doc = made[0]?.params.document as { filename: string; text: string };
    expect(doc).toMatchObject({ filename: "s1-report.txt", text: body });
    expect(textOf(made[1])).toMatch(/don't know that job/);
  });

  it("/pair and /agents", async () => {
    await post(message(OWNER, "/pair"));
    await post(message(OWNER, "/agents"));
    const made = await take();
    expect(textOf(made[0])).toMatch(/Pairing code <code>[A-Z0-9]{8}<\/code>/);
    expect(textOf(made[1])).toMatch(/No agent is connected|Agents online/);
  });
});
