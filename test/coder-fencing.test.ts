// A coding agent's permission request is fenced like every other job frame: only the agent
// running the job's current attempt under its lease is heard; anything else is denied at once and
// nobody is asked. The current one is stored with an audit row, once even if replayed.
import { env, runDurableObjectAlarm } from "cloudflare:test";
import { expect, it } from "vitest";
import type { PermissionRequestFrame } from "../protocol/index.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { pairAgent, TestAgent } from "./helpers/worker.ts";

const job = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));

it("hears a permission request only from the attempt holding the lease", async () => {
  const agent = await TestAgent.connect((await pairAgent("coder")).token, {
    workspaces: ["coder"],
    capabilities: ["git", "fs", "runner", "code"],
  });
  // Another paired agent, serving another project: it never holds this job.
  const bystander = await TestAgent.connect((await pairAgent("intruder")).token, {
    workspaces: ["elsewhere"],
    capabilities: ["git", "fs", "runner", "code"],
  });
  const jobId = newJobId();
  await job(jobId).create({
    jobId,
    projectId: "coder",
    intent: "code: fix the failing test",
    userId: "42",
    chatId: null,
  });
  await runDurableObjectAlarm(job(jobId));
  await job(jobId).approve({ id: "42", isAdmin: true });
  await job(jobId).dispatch(1);
  const offered = await agent.next("job_offer", 10_000);
  expect(offered.spec.steps.map((s) => s.action)).toEqual(["code_task"]);
  const holder = agent;
  holder.send({ type: "job_accept", jobId, attempt: 1, leaseToken: offered.leaseToken });
  await new Promise((r) => setTimeout(r, 200));

  const frame = (over: Partial<PermissionRequestFrame>): PermissionRequestFrame => ({
    type: "permission_request",
    jobId,
    attempt: 1,
    leaseToken: offered.leaseToken,
    stepId: offered.spec.steps[0]?.id ?? "s1",
    requestId: "req_aaaaaaaaaaaa",
    tool: "Bash",
    kind: "command",
    target: "npm test",
    timeoutS: 60,
    ...over,
  });
  const rows = async () =>
    (await env.DB.prepare("SELECT id, status, target FROM permission_requests WHERE job_id = ?").bind(jobId).all())
      .results;

  // A wrong lease, a wrong attempt, another agent: denied at once, nothing stored.
  holder.send(frame({ requestId: "req_wronglease1", leaseToken: "x".repeat(32) }));
  expect(await holder.next("permission_decision")).toMatchObject({ requestId: "req_wronglease1", decision: "deny" });
  holder.send(frame({ requestId: "req_wrongattempt", attempt: 2 }));
  expect(await holder.next("permission_decision")).toMatchObject({ requestId: "req_wrongattempt", decision: "deny" });
  bystander.send(frame({ requestId: "req_bystander01" }));
  expect(await bystander.next("permission_decision")).toMatchObject({ decision: "deny" });
  expect(await rows()).toEqual([]);

  // The holder's: stored pending (once, even replayed) with an audit row, and no answer yet.
  holder.send(frame({}));
  holder.send(frame({}));
  await new Promise((r) => setTimeout(r, 500));
  expect(await rows()).toEqual([{ id: "req_aaaaaaaaaaaa", status: "pending", target: "npm test" }]);
  expect(holder.received.filter((m) => m.type === "permission_decision")).toEqual([]);
  const audit = await env.DB.prepare("SELECT action FROM audit_log WHERE job_id = ? AND action LIKE 'permission%'")
    .bind(jobId)
    .all();
  expect(audit.results).toEqual([{ action: "permission_requested" }]);
  agent.close();
  bystander.close();
});
