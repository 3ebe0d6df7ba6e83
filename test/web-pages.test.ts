// The console's pages and forms in workerd with real D1 and JobDOs: the bot's /web link end to
// end, per-user lists with search and cursor pagination, deny and retry, pairing codes.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createTask } from "../src/core/orchestrator.ts";
import { issueLoginLink } from "../src/web/session.ts";
import { lastJobPlanned, message, post, TelegramScope, textOf } from "./helpers/telegram.ts";
import { cookieOf, web } from "./helpers/web.ts";
import { API_TOKEN } from "./helpers/worker.ts";

const USER = { id: 49, is_bot: false, first_name: "Web", username: "webuser" };
const STRANGER = { id: 667, is_bot: false, first_name: "Mallory", username: "mallory" };
const tg = new TelegramScope([USER.id, STRANGER.id], "wp-");

const asUser = async (id: string) =>
  cookieOf(await web("/web/link", { form: { code: (await issueLoginLink(env, id)).code } }));
const asOwner = async () => cookieOf(await web("/web/login", { form: { token: API_TOKEN } }));
async function csrfOf(cookie: string): Promise<string> {
  const m = /name="_csrf" value="([0-9a-f]{64})"/.exec(await (await web("/web", { cookie })).text());
  if (!m?.[1]) throw new Error("no CSRF field");
  return m[1];
}
type JobList = { jobs: { id: string; intent: string }[]; nextCursor: string | null };

describe("web console pages", () => {
  it("/web in the bot sends a one-time link that signs that user in; a stranger gets none", async () => {
    expect((await post(message(USER, "/web"))).status).toBe(200);
    const sent = await tg.waitCall((c) => textOf(c).includes("/web/link#"));
    const code = /\/web\/link#([0-9a-f]{64})/.exec(textOf(sent))?.[1] ?? "";
    expect(code).toMatch(/^[0-9a-f]{64}$/);
    // The landing page does not carry the code: the browser's script moves it from the fragment.
    expect(await (await web("/web/link")).text()).not.toContain(code);
    const res = await web("/web/link", { form: { code } });
    expect(res.status).toBe(303);
    const page = await (await web("/web", { cookie: cookieOf(res) })).text();
    expect(page).toContain("telegram 49");
    await post(message(STRANGER, "/web"));
    const issued = await env.DB.prepare("SELECT COUNT(*) AS n FROM web_login_links WHERE user_id = '667'").first<{
      n: number;
    }>();
    expect(issued?.n).toBe(0);
  });

  it("lists only the user's jobs, searches intents literally and pages with a cursor", async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 27; i++) {
      ids.add((await createTask(env, { intent: `check git status ${i}`, projectId: "default", userId: "48" })).id);
    }
    const odd = await createTask(env, { intent: "check git status 100%_done", projectId: "default", userId: "48" });
    await createTask(env, { intent: "check git status of another", projectId: "default", userId: "47" });
    // Same created_at for all: the cursor must then continue by id, neither repeating nor skipping.
    await env.DB.prepare("UPDATE jobs SET created_at = 1700000000000 WHERE user_id = '48'").run();
    const cookie = await asUser("48");
    const first = await (await web("/web/jobs.json", { cookie })).json<JobList>();
    expect(first.jobs).toHaveLength(25);
    expect(first.nextCursor).not.toBeNull();
    const second = await (
      await web(`/web/jobs.json?cursor=${encodeURIComponent(first.nextCursor ?? "")}`, { cookie })
    ).json<JobList>();
    const all = [...first.jobs, ...second.jobs].map((j) => j.id);
    expect(all).toHaveLength(28);
    expect(new Set(all)).toEqual(new Set([...ids, odd.id]));
    expect(second.nextCursor).toBeNull();
    // % and _ are matched as characters, not as wildcards.
    const found = await (await web(`/web/jobs.json?q=${encodeURIComponent("%_")}`, { cookie })).json<JobList>();
    expect(found.jobs.map((j) => j.id)).toEqual([odd.id]);
    expect((await web("/web/jobs.json?cursor=nonsense", { cookie })).status).toBe(400);
    const html = await (await web("/web?status=CREATED&q=status%201", { cookie })).text();
    expect(html).toContain('option value="CREATED" selected');
  });

  it("denies a WRITE plan and retries a finished job as the same user", async () => {
    await createTask(env, { intent: "run the tests", projectId: "default", userId: "46" });
    const jobId = await lastJobPlanned(46);
    const cookie = await asUser("46");
    const page = await (await web(`/web/jobs/${jobId}`, { cookie })).text();
    expect(page).toContain("run_tests");
    expect(page).toContain(`action="/web/jobs/${jobId}/deny"`);
    const csrf = await csrfOf(cookie);
    expect((await web(`/web/jobs/${jobId}/deny`, { cookie, form: { _csrf: csrf } })).status).toBe(303);
    const denied = await env.DB.prepare("SELECT status FROM jobs WHERE id = ?").bind(jobId).first<{ status: string }>();
    expect(denied?.status).toBe("CANCELLED");
    const retry = await web(`/web/jobs/${jobId}/retry`, { cookie, form: { _csrf: csrf } });
    expect(retry.status).toBe(303);
    const again = /\/web\/jobs\/(job_[0-9a-z]+)$/.exec(retry.headers.get("Location") ?? "")?.[1];
    expect(again).toBeDefined();
    expect(again).not.toBe(jobId);
    const row = await env.DB.prepare("SELECT user_id, intent FROM jobs WHERE id = ?")
      .bind(again ?? "")
      .first<{ user_id: string; intent: string }>();
    expect(row).toEqual({ user_id: "46", intent: "run the tests" });
    // An admin's retry of someone else's job is the admin's own job (as /retry in the bot).
    const admin = await asUser("43");
    const byAdmin = await web(`/web/jobs/${jobId}/retry`, { cookie: admin, form: { _csrf: await csrfOf(admin) } });
    const adminJob = /(job_[0-9a-z]+)$/.exec(byAdmin.headers.get("Location") ?? "")?.[1] ?? "";
    const owner = await env.DB.prepare("SELECT user_id FROM jobs WHERE id = ?")
      .bind(adminJob)
      .first<{ user_id: string }>();
    expect(owner?.user_id).toBe("43");
  });

  it("creates a pairing code for the owner, shown once on the page", async () => {
    const cookie = await asOwner();
    const res = await web("/web/agents/pairing", { cookie, form: { _csrf: await csrfOf(cookie), name: "phone <b>" } });
    expect(res.status).toBe(201);
    const code = /id="pairing-code">([A-Z2-9]{8})</.exec(await res.text())?.[1];
    expect(code).toBeDefined();
    const row = await env.DB.prepare("SELECT name, created_by FROM agent_tokens WHERE created_by = 'web:api'").first<{
      name: string;
    }>();
    expect(row?.name).toBe("phone <b>");
    const agents = await (await web("/web/agents", { cookie })).text();
    expect(agents).toContain("phone &lt;b&gt;");
    expect(agents).toContain("pairing code not used");
  });

  it("a job page shows the job it follows up and the follow-ups this person may see", async () => {
    const mk = async (userId: string) =>
      (await createTask(env, { intent: "check git status", projectId: "default", userId })).id;
    const parent = await mk("50");
    const mine = await mk("50");
    const theirs = await mk("44");
    const thread = (child: string) =>
      env.DB.prepare(
        "INSERT INTO job_threads (job_id, parent_job_id, reply_to_message_id, created_at) VALUES (?, ?, 7, ?)",
      )
        .bind(child, parent, Date.now())
        .run();
    await thread(mine);
    await thread(theirs);
    const user = await asUser("50");
    // The jobs' ledger rows are written by their JobDOs' outboxes; wait for them (the join needs them).
    await expect
      .poll(
        async () =>
          (
            await env.DB.prepare("SELECT COUNT(*) AS n FROM jobs WHERE id IN (?, ?)")
              .bind(mine, theirs)
              .first<{ n: number }>()
          )?.n,
      )
      .toBe(2);
    const parentPage = await (await web(`/web/jobs/${parent}`, { cookie: user })).text();
    const followUps = /<p id="follow-ups">([\s\S]*?)<\/p>/.exec(parentPage)?.[1] ?? "";
    expect(followUps).toContain(mine);
    expect(followUps).not.toContain(theirs);
    const ownerPage = await (await web(`/web/jobs/${parent}`, { cookie: await asOwner() })).text();
    expect(ownerPage).toContain(theirs);
    const childPage = await (await web(`/web/jobs/${mine}`, { cookie: user })).text();
    expect(/<p id="parent-job">[\s\S]*?<\/p>/.exec(childPage)?.[0]).toContain(`href="/web/jobs/${parent}"`);
    expect(childPage).not.toContain('id="follow-ups"');
  });
});
