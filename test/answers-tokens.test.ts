// A job's model tokens, as the planner and the answer writer add them to its state, reach the job
// view, the ledger row and /metrics' totals.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { JobDO } from "../src/jobs/job-do.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { addTallies } from "../src/planners/model-call.ts";
import { insides } from "./helpers/job-insides.ts";
import { api } from "./helpers/worker.ts";

const stub = (jobId: string) => env.JOB.get(env.JOB.idFromName(jobId));

async function tokenMetrics(): Promise<Record<string, number>> {
  const res = await api("/metrics");
  expect(res.status).toBe(200);
  const out: Record<string, number> = {};
  for (const m of (await res.text()).matchAll(/^(skynet_model_\w+(?:\{kind="\w+"\})?) (\d+)$/gm)) {
    out[m[1] as string] = Number(m[2]);
  }
  return out;
}

describe("tokens counted per job", () => {
  it("adds each call's tokens to the job, its ledger row and the /metrics totals", async () => {
    const before = await tokenMetrics();
    const jobId = newJobId();
    await stub(jobId).create({ jobId, projectId: "default", intent: "check git status", userId: "42", chatId: null });
    await runDurableObjectAlarm(stub(jobId));
    expect((await stub(jobId).get())?.tokens ?? null).toBeNull(); // the rules planned it: no model call
    const plan = { calls: 1, input: 310, cachedInput: 1900, cacheWrite: 0, output: 120 };
    const answer = { calls: 1, input: 850, cachedInput: 0, cacheWrite: 400, output: 30 };
    await runInDurableObject(stub(jobId), async (i: JobDO) => {
      const s = insides(i).load();
      if (!s) throw new Error("no job");
      s.tokens = addTallies(addTallies(s.tokens, plan), answer);
      insides(i).commit(s);
      await insides(i).afterChange();
    });
    expect((await stub(jobId).get())?.tokens).toEqual({
      calls: 2,
      input: 1160,
      cachedInput: 1900,
      cacheWrite: 400,
      output: 150,
    });
    const row = await env.DB.prepare(
      "SELECT model_calls, tokens_input, tokens_cached, tokens_cache_write, tokens_output FROM jobs WHERE id = ?",
    )
      .bind(jobId)
      .first();
    expect(row).toEqual({
      model_calls: 2,
      tokens_input: 1160,
      tokens_cached: 1900,
      tokens_cache_write: 400,
      tokens_output: 150,
    });
    const after = await tokenMetrics();
    const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
    expect(delta("skynet_model_calls_total")).toBe(2);
    expect(delta('skynet_model_tokens_total{kind="input"}')).toBe(1160);
    expect(delta('skynet_model_tokens_total{kind="cached"}')).toBe(1900);
    expect(delta('skynet_model_tokens_total{kind="cache_write"}')).toBe(400);
    expect(delta('skynet_model_tokens_total{kind="output"}')).toBe(150);
  });
});
