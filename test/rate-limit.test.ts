// The per-user task rate limit is a Durable Object counter, not a count of the user's jobs in D1.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createTask } from "../src/core/orchestrator.ts";
import { takeTaskSlot } from "../src/http/rate-limit-do.ts";

describe("task rate limit", () => {
  it("allows `limit` tasks a minute per user, each user on their own", async () => {
    const results = [];
    for (let n = 0; n < 4; n++) results.push(await takeTaskSlot(env, "rl-user-a", 3));
    expect(results).toEqual([true, true, true, false]);
    expect(await takeTaskSlot(env, "rl-user-b", 3)).toBe(true);
  });

  it("refuses from the counter alone: no jobs of the user in D1 are needed", async () => {
    for (let n = 0; n < 10; n++) expect(await takeTaskSlot(env, "rl-user-c", 10)).toBe(true);
    const before = await env.DB.prepare("SELECT COUNT(*) AS n FROM jobs WHERE user_id = 'rl-user-c'").first<{
      n: number;
    }>();
    expect(before?.n).toBe(0);
    await expect(
      createTask(env, { intent: "check git status", projectId: "default", userId: "rl-user-c", rateLimited: true }),
    ).rejects.toMatchObject({ code: "rate_limited" });
    // The owner (API, not rate limited) is never counted.
    const job = await createTask(env, { intent: "check git status", projectId: "default", userId: "rl-user-c" });
    expect(job.status).toBe("QUEUED"); // created and, read whole by the rules, queued at once
  });
});
