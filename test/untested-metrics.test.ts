// /metrics against what the test made happen and against the ledger: job counts by status, the
// dispatch-latency and duration histograms, agents online, and the counters it exposes.
import { env, runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { JobStatusSchema } from "../protocol/index.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { jobFinished } from "./helpers/frames.ts";
import { expectWebhookErrors } from "./helpers/telegram.ts";
import { api, pairAgent, TestAgent } from "./helpers/worker.ts";

const job = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));

async function metrics(): Promise<Map<string, number>> {
  const res = await api("/metrics");
  expect(res.status).toBe(200);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(\S+) (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    out.set(m[1] as string, Number(m[2]));
  }
  return out;
}

async function planned(projectId: string, intent: string): Promise<string> {
  const jobId = newJobId();
  await job(jobId).create({ jobId, projectId, intent, userId: "42", chatId: null });
  await runDurableObjectAlarm(job(jobId));
  return jobId;
}

async function ledgerCount(status: string): Promise<number> {
  const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM jobs WHERE status = ?")
    .bind(status)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

describe("/metrics", () => {
  it("counts what happened, as the ledger has it", async () => {
    const before = await metrics();
    const at = (m: Map<string, number>, name: string) => m.get(name) ?? 0;

    const agent = await TestAgent.connect((await pairAgent("metered")).token, { workspaces: ["metrics"] });
    // One job run to success by the agent.
    const done = await planned("metrics", "check git status");
    await job(done).dispatch(1);
    const offer = await agent.next("job_offer");
    const fence = { jobId: done, attempt: 1, leaseToken: offer.leaseToken };
    agent.send({ type: "job_accept", ...fence });
    agent.send(jobFinished(fence));
    await expect.poll(async () => (await job(done).get())?.status).toBe("SUCCEEDED");
    // One waiting for approval, one denied, one queued for a project nobody serves.
    const waiting = await planned("metrics", "create a new file m.txt with x");
    const denied = await planned("metrics", "create a new file n.txt with y");
    await job(denied).deny({ id: "42", isAdmin: false });
    const queued = await planned("metrics-nobody", "check git status");
    await job(queued).dispatch(1);
    expect((await job(waiting).get())?.status).toBe("PLANNED");
    expect((await job(queued).get())?.status).toBe("QUEUED");

    // The ledger is written from each job's outbox: wait for it, then compare.
    await expect.poll(() => ledgerCount("SUCCEEDED")).toBe(at(before, 'skynet_jobs{status="SUCCEEDED"}') + 1);
    await expect.poll(() => ledgerCount("CANCELLED")).toBe(at(before, 'skynet_jobs{status="CANCELLED"}') + 1);
    const after = await metrics();
    const delta = (name: string) => at(after, name) - at(before, name);
    expect(delta('skynet_jobs{status="SUCCEEDED"}')).toBe(1);
    expect(delta('skynet_jobs{status="PLANNED"}')).toBe(1);
    expect(delta('skynet_jobs{status="CANCELLED"}')).toBe(1);
    expect(delta('skynet_jobs{status="QUEUED"}')).toBe(1);
    expect(delta('skynet_jobs{status="RUNNING"}')).toBe(0);
    for (const status of JobStatusSchema.options) {
      expect(at(after, `skynet_jobs{status="${status}"}`), status).toBe(await ledgerCount(status));
    }
    // One QUEUED→RUNNING and one RUNNING→final transition happened.
    expect(delta("skynet_dispatch_latency_seconds_count")).toBe(1);
    expect(delta('skynet_dispatch_latency_seconds_bucket{le="+Inf"}')).toBe(1);
    expect(delta("skynet_job_duration_seconds_count")).toBe(1);
    expect(at(after, "skynet_agents_online")).toBe(at(before, "skynet_agents_online") + 1);
    expect(delta("skynet_redispatches_total")).toBe(0);
    expect(delta("skynet_webhook_errors_total")).toBe(0);
    agent.close();
    await expect
      .poll(async () => (await metrics()).get("skynet_agents_online"))
      .toBe(at(before, "skynet_agents_online"));
  });

  it("exposes the counters the Worker keeps, as stored", async () => {
    expectWebhookErrors(3); // seeded below, not a failing handler
    await env.DB.prepare(
      "INSERT INTO counters (name, value) VALUES ('webhook_errors', 3), ('telegram_refusals:403', 2), ('queue_retries', 5) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
    ).run();
    const m = await metrics();
    expect(m.get("skynet_webhook_errors_total")).toBe(3);
    expect(m.get('skynet_telegram_refusals_total{code="403"}')).toBe(2);
    expect(m.get("skynet_queue_retries_total")).toBe(5);
  });
});
