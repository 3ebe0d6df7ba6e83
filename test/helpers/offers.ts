// A job brought to QUEUED and offered to a fresh test agent, spelled once for the tests of the
// offer path (the lease it carries, batches under it).
import { env, runDurableObjectAlarm } from "cloudflare:test";
import { expect } from "vitest";
import type { ServerMessageOf } from "../../protocol/index.ts";
import { newJobId } from "../../src/lib/crypto.ts";
import { pairAgent, TestAgent } from "./worker.ts";

export const jobStubOf = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));

/** A READ_ONLY job of `projectId`, planned (by its alarm if not inline) and approved: QUEUED. */
export async function queuedJob(projectId: string): Promise<string> {
  const jobId = newJobId();
  const job = jobStubOf(jobId);
  await job.create({ jobId, projectId, intent: "check git status", userId: "42", chatId: null });
  if ((await job.get())?.status === "CREATED") await runDurableObjectAlarm(job);
  if ((await job.get())?.status === "PLANNED") await job.approve({ id: "42", isAdmin: true });
  expect((await job.get())?.status).toBe("QUEUED");
  return jobId;
}

/** A new agent `name` serving `project`, and a queued job of that project dispatched to it. */
export async function offered(
  name: string,
  project: string,
): Promise<{ agent: TestAgent; agentId: string; jobId: string; offer: ServerMessageOf<"job_offer"> }> {
  const { agentId, token } = await pairAgent(name);
  const agent = await TestAgent.connect(token, { workspaces: [project] });
  const jobId = await queuedJob(project);
  await jobStubOf(jobId).dispatch(1);
  const offer = await agent.next("job_offer");
  return { agent, agentId, jobId, offer };
}
