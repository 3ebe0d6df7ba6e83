// The registry's JobDO stubs (job-stubs.ts): made once per job and reused, since making one
// hashes the job's name; dropped when a call on it throws, since the runtime then fails every
// later call on that stub. The binding is the real one, its getByName counted.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { JobStubs } from "../src/agents/job-stubs.ts";
import { newJobId } from "../src/lib/crypto.ts";

/** The test's env with its JOB binding's getByName counted. */
function countingEnv(): { env: Env; made: string[] } {
  const made: string[] = [];
  const job = new Proxy(env.JOB, {
    get: (t, prop) =>
      prop === "getByName"
        ? (name: string) => {
            made.push(name);
            return t.getByName(name);
          }
        : Reflect.get(t, prop),
  });
  return { env: { ...env, JOB: job }, made };
}

describe("the registry's stubs to jobs", () => {
  it("makes one stub per job for many calls, and a new one after a call threw", async () => {
    const counted = countingEnv();
    const jobs = new JobStubs(counted.env);
    const a = newJobId();
    const b = newJobId();
    // Real calls on the JobDOs (no job created: each answers that it has none).
    expect(await jobs.call(a, (j) => j.get())).toBeNull();
    expect(await jobs.call(a, (j) => j.get())).toBeNull();
    expect(await jobs.call(b, (j) => j.get())).toBeNull();
    expect(await jobs.call(a, (j) => j.get())).toBeNull();
    expect(counted.made).toEqual([a, b]);

    await expect(jobs.call(a, () => Promise.reject(new Error("broken")))).rejects.toThrow("broken");
    expect(await jobs.call(a, (j) => j.get())).toBeNull();
    expect(await jobs.call(b, (j) => j.get())).toBeNull();
    expect(counted.made).toEqual([a, b, a]);
    expect(jobs.size).toBe(2);
  });
});
