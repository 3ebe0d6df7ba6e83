// Expiry truth for the coding agent's permission requests: the agent's own timeout (authoritative,
// it denies) is reported up and the request reads `expired` at that moment, audited; a request
// whose agent went silent is expired by the Sentinel's sweep once past its deadline; and whichever
// way a request ends (expired, or decided in the API), its Telegram message is edited to say so
// with its buttons removed.
import { env, runDurableObjectAlarm } from "cloudflare:test";
import { expect, it } from "vitest";
import type { PermissionRequestFrame } from "../protocol/index.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { runSentinel } from "../src/sentinel/sentinel.ts";
import { type Call, TelegramScope, textOf } from "./helpers/telegram.ts";
import { api, json, pairAgent, TestAgent } from "./helpers/worker.ts";

const CHAT = -7781501;
const tg = new TelegramScope([CHAT], "cexp-");
const job = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));

async function until<T>(fn: () => Promise<T | undefined | null | false>, what: string): Promise<T> {
  const deadline = Date.now() + 8000;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const row = (id: string) =>
  env.DB.prepare("SELECT status, message_id AS messageId FROM permission_requests WHERE id = ?")
    .bind(id)
    .first<{ status: string; messageId: number | null }>();

const audits = async (jobId: string) =>
  (
    await env.DB.prepare(
      "SELECT actor, action, detail FROM audit_log WHERE job_id = ? AND action LIKE 'permission%' ORDER BY id",
    )
      .bind(jobId)
      .all<{ actor: string; action: string; detail: string }>()
  ).results;

/** The edit of the asking message (this request's), once made. */
const editOf = (messageId: number) => (c: Call) =>
  c.method === "editMessageText" && Number(c.params.message_id) === messageId && c.ok !== false;

it("closes every way a request ends: the agent's timeout, the Sentinel's sweep, a decision in the API", async () => {
  const paired = await pairAgent("coder-expiry");
  const agent = await TestAgent.connect(paired.token, {
    workspaces: ["coder-expiry"],
    capabilities: ["git", "fs", "runner", "code"],
  });
  // Another agent: it cannot expire a request it did not make.
  const other = await TestAgent.connect((await pairAgent("coder-expiry-other")).token, {
    workspaces: ["coder-elsewhere"],
    capabilities: ["git", "fs", "runner", "code"],
  });
  const jobId = newJobId();
  await job(jobId).create({
    jobId,
    projectId: "coder-expiry",
    intent: "code: fix the failing test",
    userId: String(CHAT),
    chatId: String(CHAT),
  });
  await runDurableObjectAlarm(job(jobId));
  await job(jobId).approve({ id: String(CHAT), isAdmin: true });
  await job(jobId).dispatch(1);
  const offer = await agent.next("job_offer", 10_000);
  agent.send({ type: "job_accept", jobId, attempt: 1, leaseToken: offer.leaseToken });
  await until(async () => (await job(jobId).get())?.status === "RUNNING", "RUNNING");

  const ask = async (requestId: string, target: string): Promise<number> => {
    const frame: PermissionRequestFrame = {
      type: "permission_request",
      jobId,
      attempt: 1,
      leaseToken: offer.leaseToken,
      stepId: offer.spec.steps[0]?.id ?? "s1",
      requestId,
      tool: "Bash",
      kind: "command",
      target,
      timeoutS: 60,
    };
    // The registry books the job as running just after the JobDO does: until then a request is
    // refused as stale (and stored nowhere), so it is sent again until it is stored.
    const stored = await until(async () => {
      const r = await row(requestId);
      if (!r) agent.send(frame);
      return r?.messageId;
    }, `${requestId} asked in Telegram`);
    const asked = await tg.waitCall((c) => c.method === "sendMessage" && textOf(c).includes(target));
    expect(JSON.stringify(asked.params.reply_markup)).toContain(`pm:a:${requestId}`);
    return stored;
  };

  // 1. The agent's timeout: reported up, expired at once (no press needed), audited, message closed.
  const first = await ask("req_expiry_agent1", "npm run lint");
  other.send({ type: "permission_expired", jobId, attempt: 1, requestId: "req_expiry_agent1" });
  await new Promise((r) => setTimeout(r, 300));
  expect((await row("req_expiry_agent1"))?.status).toBe("pending");
  agent.send({ type: "permission_expired", jobId, attempt: 1, requestId: "req_expiry_agent1" });
  await until(async () => (await row("req_expiry_agent1"))?.status === "expired", "expired by the agent");
  const closed = await tg.waitCall(editOf(first));
  expect(textOf(closed)).toContain("npm run lint");
  expect(textOf(closed)).toContain("Expired");
  expect(closed.params.reply_markup).toBeUndefined();
  expect(await audits(jobId)).toContainEqual(
    expect.objectContaining({ actor: `agent:${paired.agentId}`, action: "permission_expired" }),
  );

  // 2. The agent went silent: the Sentinel sweeps only what is past its deadline.
  const second = await ask("req_expiry_sweep1", "npm test");
  const third = await ask("req_expiry_api001", "git status --short");
  let report = await runSentinel(env);
  expect(report.permissionsExpired).not.toContain("req_expiry_sweep1");
  expect((await row("req_expiry_sweep1"))?.status).toBe("pending");
  const due = Date.now() + 61_000;
  report = await runSentinel(env, due);
  expect(report.permissionsExpired).toContain("req_expiry_sweep1");
  expect(report.permissionsExpired).toContain("req_expiry_api001");
  expect((await row("req_expiry_sweep1"))?.status).toBe("expired");
  const swept = await tg.waitCall(editOf(second));
  expect(textOf(swept)).toContain("Expired");
  expect(swept.params.reply_markup).toBeUndefined();
  const sweptAudit = (await audits(jobId)).filter((a) => a.action === "permission_expired");
  expect(sweptAudit.map((a) => a.actor)).toEqual([`agent:${paired.agentId}`, "system", "system"]);
  // Expired stays expired: a late press or API call changes nothing.
  const late = await api("/api/permissions/req_expiry_sweep1", {
    method: "POST",
    json: { decision: "allow" },
  });
  expect(late.status).toBe(409);
  expect((await row("req_expiry_sweep1"))?.status).toBe("expired");

  // 3. Decided in the API (third was swept too at `due`; a fresh one is decided in time).
  expect((await row("req_expiry_api001"))?.status).toBe("expired");
  await tg.waitCall(editOf(third));
  const fourth = await ask("req_expiry_api002", "git diff --stat");
  const decided = await api("/api/permissions/req_expiry_api002", {
    method: "POST",
    json: { decision: "deny" },
  });
  expect(decided.status).toBe(200);
  expect(await json(decided)).toMatchObject({ status: "denied" });
  const denied = await tg.waitCall(editOf(fourth));
  expect(textOf(denied)).toContain("Denied");
  expect(denied.params.reply_markup).toBeUndefined();
  const down = await until(
    async () => agent.received.find((m) => m.type === "permission_decision" && m.requestId === "req_expiry_api002"),
    "the decision sent down",
  );
  expect(down).toMatchObject({ decision: "deny", reason: "denied by the requester" });

  agent.close();
  other.close();
}, 30_000);
