// A job that ends gets its answer before its final notification: here without a key, so the rule
// answer, read from the run_tests step's real output (a node --test TAP report) as the agent sent it.
import { env, runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { JobView } from "../protocol/index.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { jobFinished } from "./helpers/frames.ts";
import { pairAgent, TestAgent } from "./helpers/worker.ts";

const owner = { id: "42", isAdmin: false };
const stub = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));

async function waitFor(fn: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function waitView(jobId: string, ok: (j: JobView) => boolean): Promise<JobView> {
  let last: JobView | null = null;
  await waitFor(async () => {
    last = await stub(jobId).get();
    return last !== null && ok(last);
  });
  if (!last) throw new Error("no job");
  return last;
}

const TAP = `TAP version 13
# Subtest: adds numbers
ok 1 - adds numbers
  ---
  duration_ms: 1.04
  type: 'test'
  ...
# Subtest: subtracts numbers
not ok 2 - subtracts numbers
  ---
  duration_ms: 7.7
  type: 'test'
  failureType: 'testCodeFailure'
  error: '1 == 3'
  ...
1..2
# pass 1
# fail 1
`;

describe("job answers", () => {
  it("answers 'which failed' from the test output when the job ends, before the final notification", async () => {
    const { token } = await pairAgent("answer-agent");
    const agent = await TestAgent.connect(token, { workspaces: ["answers"] });
    const jobId = newJobId();
    await stub(jobId).create({
      jobId,
      projectId: "answers",
      intent: "run the tests and tell me which failed",
      userId: owner.id,
      chatId: null,
    });
    await runDurableObjectAlarm(stub(jobId));
    const planned = await stub(jobId).get();
    expect(planned?.question).toBe("which failed");
    expect(planned?.plan?.proposedSteps.map((s) => s.action)).toEqual(["run_tests"]);
    expect(planned?.answer ?? null).toBeNull();
    await stub(jobId).approve(owner);
    await stub(jobId).dispatch(1);
    const offer = await agent.next("job_offer");
    const fence = { jobId, attempt: offer.attempt, leaseToken: offer.leaseToken };
    agent.send({ type: "job_accept", ...fence });
    await waitView(jobId, (j) => j.status === "RUNNING");
    agent.send({ type: "step_started", ...fence, stepId: "s1", startedAt: new Date().toISOString() });
    agent.send({ type: "log", ...fence, stepId: "s1", seq: 0, stream: "stdout", data: TAP });
    agent.send({
      type: "step_finished",
      ...fence,
      stepId: "s1",
      outcome: "failed",
      exitCode: 1,
      durationMs: 50,
    });
    agent.send(jobFinished(fence, { action: "run_tests", exitCode: 1 }));
    const done = await waitView(jobId, (j) => j.status === "FAILED" && !!j.answer);
    expect(done.answer).toMatchObject({ by: "rules", text: "1 test failed (exit 1): subtracts numbers." });
    expect(done.tokens ?? null).toBeNull();
    agent.close();
  });
});
