// The web console in real headless Chromium (Debian's, driven by playwright-core) against wrangler
// dev with a real agent: sign in, a live log, approve and cancel from a job's page, revoke an agent,
// hostile text rendered inert, CSRF and a signed-out session refused, the sign-in limit's page.
// Screenshots of every page go to test-results/web-console/ (gitignored; the last test checks them).
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent } from "../helpers/node/agent-process.ts";
import { ApiClient } from "../helpers/node/api-client.ts";
import { type GitRepo, makeGitRepo } from "../helpers/node/git-repo.ts";
import { waitFor } from "../helpers/node/wait.ts";
import { type RunningWorker, startWorker } from "../helpers/node/wrangler-dev.ts";

const CHROMIUM = "/usr/bin/chromium";
const SHOTS = join(process.cwd(), "test-results", "web-console");
const HOSTILE_LOG = `<img src=x onerror="window.__pwned=1;alert(1)"></script><script>window.__pwned=2</script>`;
const HOSTILE_INTENT = `check git status <img src=x onerror="window.__pwned=3;alert(3)"></script><script>window.__pwned=4</script>`;

let worker: RunningWorker;
let client: ApiClient;
let repo: GitRepo;
let agent: AgentProcess | undefined;
let context: BrowserContext;
let page: Page;
let profile: string;
const dialogs: string[] = [];

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Nothing hostile ran: no dialog, no script-set flag, no <img> that came from data. */
async function expectInert(): Promise<void> {
  expect(dialogs).toEqual([]);
  expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
  expect(await page.locator("main img").count()).toBe(0);
}

async function csrfOnPage(): Promise<string> {
  const v = await page.locator('input[name="_csrf"]').first().getAttribute("value");
  if (!v) throw new Error("no CSRF field on the page");
  return v;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); .ci/run does`);
  }
  await mkdir(SHOTS, { recursive: true });
  worker = await startWorker();
  client = new ApiClient(worker.url, worker.apiToken);
  repo = await makeGitRepo({
    "package.json": JSON.stringify({ name: "web", version: "1.0.0", scripts: { test: "sh t.sh" } }),
    // A hostile line first, then a slow tick so the log visibly grows while the page is open.
    "t.sh": `printf '%s\\n' '${HOSTILE_LOG}'\nfor i in $(seq 1 60); do echo "tick-$i"; sleep 1; done\n`,
  });
  const { token } = await client.pair("web-agent");
  agent = await startAgent({ url: worker.url, token, workspace: repo.dir, name: "web-agent" });
  await waitFor(async () => (await client.agentsOnline()) >= 1, { timeoutMs: 30_000, what: "the agent online" });
  profile = await mkdtemp(join(tmpdir(), "skynet-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 390, height: 844 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-sync",
    ],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
});

afterAll(async () => {
  await context?.close();
  await agent?.kill();
  await worker?.stop();
  await repo?.cleanup();
  if (profile) await rm(profile, { recursive: true, force: true });
});

describe("web console in Chromium", () => {
  it("signs in with the API token", async () => {
    await page.goto(`${worker.url}/web/link`);
    expect(await page.textContent("h1")).toBe("Sign in from Telegram");
    await shot("link");
    await page.goto(`${worker.url}/web`);
    expect(new URL(page.url()).pathname).toBe("/web/login");
    await shot("login");
    await page.fill('input[name="token"]', "wrong");
    await page.click('button[type="submit"]');
    await expect.poll(() => page.textContent("main")).toContain("Wrong token.");
    await page.fill('input[name="token"]', worker.apiToken);
    await page.click('button[type="submit"]');
    await page.waitForURL(`${worker.url}/web`);
    expect(await page.textContent("h1")).toBe("Jobs");
    expect(await page.content()).not.toContain(worker.apiToken);
    const cookie = (await context.cookies()).find((c) => c.name === "skynet_web");
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict" });
  });

  it("shows a job's log arriving live, renders a hostile log line as text, and cancels the running job", async () => {
    const jobId = await client.submit("run the tests");
    await client.waitStatus(jobId, ["PLANNED"]);
    expect((await client.call(`/api/jobs/${jobId}/approve`, { json: {} })).status).toBe(200);
    await client.waitStatus(jobId, ["RUNNING"]);
    await page.goto(`${worker.url}/web/jobs/${jobId}`);
    const tickOf = async () =>
      Math.max(0, ...[...((await page.textContent("#log")) ?? "").matchAll(/tick-(\d+)/g)].map((m) => Number(m[1])));
    const first = await waitFor(async () => (await tickOf()) || null, { timeoutMs: 30_000, what: "a first log line" });
    // Later lines arrive on the open page (the server-sent events stream), no reload needed.
    await waitFor(async () => (await tickOf()) >= first + 2, { timeoutMs: 30_000, what: "more log lines, live" });
    expect(await page.textContent("#log")).toContain(HOSTILE_LOG);
    await expectInert();
    await shot("job-running");
    await page.click("button.cancel");
    const done = await client.waitFinished(jobId, 60_000);
    expect(done.status).toBe("CANCELLED");
    await expect.poll(() => page.textContent("#job-status"), { timeout: 15_000 }).toBe("CANCELLED");
    // The whole log downloads behind the same session (no API token in the page), as text.
    const log = await context.request.get(`${worker.url}/web/jobs/${jobId}/log`);
    expect(log.status()).toBe(200);
    expect(log.headers()["content-disposition"]).toBe(`attachment; filename="${jobId}.log"`);
    const whole = await log.text();
    expect(whole).toContain(HOSTILE_LOG);
    expect(whole).toContain("tick-1\n");
  });

  it("approves a WRITE plan from its page, and the file is written", async () => {
    const jobId = await client.submit("create a new file web.txt with hello from the browser");
    await client.waitStatus(jobId, ["PLANNED"]);
    await page.goto(`${worker.url}/web/jobs/${jobId}`);
    const plan = (await page.textContent("main")) ?? "";
    expect(plan).toContain("write_file");
    expect(plan).toContain("web.txt");
    expect(await page.locator(".step .risk-WRITE").count()).toBeGreaterThan(0);
    await shot("job-plan");
    await page.click("button.approve");
    expect((await client.waitFinished(jobId, 60_000)).status).toBe("SUCCEEDED");
    expect(await readFile(join(repo.dir, "web.txt"), "utf8")).toContain("hello from the browser");
    // The page followed the job to its end (it reloads as the job moves on).
    await expect.poll(() => page.textContent("#job-status"), { timeout: 15_000 }).toBe("SUCCEEDED");
  });

  it("shows a new job in the list without a reload and renders a hostile intent as text", async () => {
    await page.goto(`${worker.url}/web`);
    const jobId = await client.submit(HOSTILE_INTENT);
    const row = page.locator(`tr[data-job="${jobId}"]`);
    await row.waitFor({ timeout: 20_000 });
    expect(await row.textContent()).toContain(HOSTILE_INTENT);
    await expectInert();
    await shot("jobs");
    await page.goto(`${worker.url}/web/jobs/${jobId}`);
    expect(await page.textContent("#intent")).toBe(HOSTILE_INTENT);
    await expectInert();
  });

  it("refuses a POST without this session's CSRF token and changes nothing", async () => {
    const jobId = await client.submit("run the tests");
    await client.waitStatus(jobId, ["PLANNED"]);
    const url = `${worker.url}/web/jobs/${jobId}/approve`;
    const headers = { Origin: worker.url };
    // Another session's token (signed in separately) is no good here.
    const other = await fetch(`${worker.url}/web/login`, {
      method: "POST",
      redirect: "manual",
      headers: { ...headers, "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: worker.apiToken }),
    });
    const otherCookie = (other.headers.get("Set-Cookie") ?? "").split(";")[0] ?? "";
    const otherPage = await (await fetch(`${worker.url}/web`, { headers: { Cookie: otherCookie } })).text();
    const otherCsrf = /name="_csrf" value="([0-9a-f]{64})"/.exec(otherPage)?.[1] ?? "";
    expect(otherCsrf).toMatch(/^[0-9a-f]{64}$/);
    await page.goto(`${worker.url}/web/jobs/${jobId}`);
    expect(otherCsrf).not.toBe(await csrfOnPage());
    const forms: Record<string, string>[] = [{}, { _csrf: otherCsrf }];
    for (const form of forms) {
      expect((await context.request.post(url, { form, headers, maxRedirects: 0 })).status()).toBe(403);
    }
    // The right token from a foreign origin fails hono's Origin check.
    const foreign = await context.request.post(url, {
      form: { _csrf: await csrfOnPage() },
      headers: { Origin: "http://evil.example" },
      maxRedirects: 0,
    });
    expect(foreign.status()).toBe(403);
    expect((await client.job(jobId)).status).toBe("PLANNED");
    expect((await client.call(`/api/jobs/${jobId}/cancel`, { json: {} })).status).toBe(200);
    // The open page reloads the moment its job moves on; let it, before the next test navigates.
    await expect.poll(() => page.textContent("#job-status"), { timeout: 15_000 }).toBe("CANCELLED");
  });

  it("shows the overview with a chart from the ledger", async () => {
    await page.goto(`${worker.url}/web/overview`);
    expect(await page.locator("svg#jobs-per-hour rect").count()).toBeGreaterThan(0);
    expect(await page.textContent("#percentiles")).toContain("queued → running");
    // Model tokens per day: 14 days × input, cached, output (0 here: the rules planned every job).
    expect(await page.locator("svg#tokens-per-day rect").count()).toBe(42);
    expect(await page.textContent("#token-totals")).toMatch(/input \d+ .*cached \d+ .*output \d+/);
    await shot("overview");
    const missing = await page.goto(`${worker.url}/web/jobs/job_0000000000nothere`);
    expect(missing?.status()).toBe(404);
    expect(await page.textContent("main")).toContain("No such job.");
    await shot("not-found");
  });

  it("revokes an agent from the agents page; it goes offline", async () => {
    await page.goto(`${worker.url}/web/agents`);
    const row = page.locator("tr", { hasText: "web-agent" });
    expect(await row.locator(".status").textContent()).toBe("online");
    await shot("agents");
    await row.locator("button.revoke").click();
    await waitFor(async () => (await client.agentsOnline()) === 0, { timeoutMs: 30_000, what: "the agent to drop" });
    await page.goto(`${worker.url}/web/agents`);
    expect(await page.locator("tr", { hasText: "web-agent" }).locator(".status").textContent()).toBe("revoked");
  });

  it("after sign-out the old session cookie is refused", async () => {
    await page.goto(`${worker.url}/web`);
    const saved = await context.cookies();
    const csrf = await csrfOnPage();
    const jobId = await client.submit("run the tests");
    await client.waitStatus(jobId, ["PLANNED"]);
    await page.click("nav button.link");
    await page.waitForURL(`${worker.url}/web/login`);
    await context.addCookies(saved);
    await page.goto(`${worker.url}/web`);
    expect(new URL(page.url()).pathname).toBe("/web/login");
    const res = await context.request.post(`${worker.url}/web/jobs/${jobId}/approve`, {
      form: { _csrf: csrf },
      headers: { Origin: worker.url },
      maxRedirects: 0,
    });
    expect(res.status()).toBe(401);
    expect((await client.job(jobId)).status).toBe("PLANNED");
  });

  it("refuses sign-in after too many attempts with one token prefix, with a clear 429 page", async () => {
    // Ten wrong tokens sharing a prefix (fewer than the per-address limit, which other tests share).
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${worker.url}/web/login`, {
        method: "POST",
        redirect: "manual",
        headers: { Origin: worker.url, "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token: `e2e-limit-${i}` }),
      });
      expect(res.status).toBe(401);
    }
    await page.goto(`${worker.url}/web/login`);
    await page.fill('input[name="token"]', "e2e-limit-last");
    const [response] = await Promise.all([
      page.waitForResponse(`${worker.url}/web/login`),
      page.click('button[type="submit"]'),
    ]);
    expect(response.status()).toBe(429);
    expect(await page.textContent("#limited")).toContain("Too many sign-in attempts with this token");
    await shot("sign-in-limited");
  });

  it("kept a screenshot of every page as a test artifact", async () => {
    const pages = [
      "link",
      "login",
      "jobs",
      "job-running",
      "job-plan",
      "overview",
      "not-found",
      "agents",
      "sign-in-limited",
    ];
    for (const name of pages) {
      const png = await readFile(join(SHOTS, `${name}.png`));
      expect(png.subarray(0, 8).toString("hex"), name).toBe("89504e470d0a1a0a");
      expect(png.length, name).toBeGreaterThan(2000);
    }
  });
});
