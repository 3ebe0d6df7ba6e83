// /metrics kept incrementally: after jobs go through real JobDO transitions (their events
// written through the outbox), the counters give the same numbers as a full recomputation
// from every event of every job (jobs.events) and jobs — the way /metrics used to compute them per scrape.
import { env, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { JobEvent } from "../src/core/job-machine.ts";
import { newJobState } from "../src/jobs/decisions.ts";
import type { JobDO } from "../src/jobs/job-do.ts";
import type { JobState } from "../src/jobs/job-state.ts";
import { DISPATCH_BUCKETS_S, DURATION_BUCKETS_S } from "../src/ledger/metric-counters.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { insides } from "./helpers/job-insides.ts";
import { api, JOB_EVENTS } from "./helpers/worker.ts";

afterEach(() => {
  vi.useRealTimers();
});

function freshState(jobId: string, now: number): JobState {
  const input = { jobId, projectId: "default", intent: "check git status", userId: "api", chatId: null };
  return { ...newJobState(input, now), planningStarted: true };
}

/**
 * Runs a job through these transitions, `gapMs` apart, each written through the outbox; with
 * `batched`, drained once at the end, so the events go to D1 together (summed counters).
 */
async function runJob(path: [JobEvent, number][], batched = false): Promise<string> {
  const jobId = newJobId();
  const stub = env.JOB.get(env.JOB.idFromName(jobId)) as DurableObjectStub<JobDO>;
  await runInDurableObject(stub, async (i: JobDO) => {
    let t = Date.now();
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(t);
    insides(i).commit(freshState(jobId, t), [
      { kind: "event", seq: 1, fromStatus: null, toStatus: "CREATED", event: "create", detail: null, at: t },
    ]);
    await insides(i).drain();
    for (const [event, gapMs] of path) {
      t += gapMs;
      vi.setSystemTime(t);
      const s = insides(i).load() as JobState;
      insides(i).commit(s, insides(i).move(s, event));
      if (!batched) await insides(i).drain();
    }
    vi.useRealTimers();
    await insides(i).drain();
    expect(insides(i).outbox.size()).toBe(0);
  });
  return jobId;
}

/**
 * The definition, recomputed from every event: each matching event against the latest earlier
 * one that entered the status from another (a `waiting` or `reachable` event is no new start).
 */
async function recomputed(toStatuses: string[], fromStatus: string): Promise<number[]> {
  const { results } = await env.DB.prepare(
    `SELECT e.at - (SELECT p.at FROM ${JOB_EVENTS} p WHERE p.job_id = e.job_id AND p.to_status = ? AND p.seq < e.seq
                      AND (p.from_status IS NULL OR p.from_status != p.to_status)
                    ORDER BY p.seq DESC LIMIT 1) AS ms
     FROM ${JOB_EVENTS} e WHERE e.to_status IN (${toStatuses.map(() => "?").join(",")})`,
  )
    .bind(fromStatus, ...toStatuses)
    .all<{ ms: number | null }>();
  return results.flatMap((r) => (r.ms === null ? [] : [r.ms / 1000]));
}

function expectedHistogram(name: string, buckets: number[], values: number[]): string[] {
  return [
    ...buckets.map((le) => `${name}_bucket{le="${le}"} ${values.filter((v) => v <= le).length}`),
    `${name}_bucket{le="+Inf"} ${values.length}`,
    `${name}_sum ${Number(values.reduce((a, b) => a + b, 0).toFixed(3))}`,
    `${name}_count ${values.length}`,
  ];
}

describe("incremental /metrics", () => {
  it("equals a full recomputation from jobs and their events", async () => {
    await runJob([
      ["plan_ready", 800],
      ["approve", 2_000],
      ["start", 70],
      ["succeed", 4_200],
    ]);
    await runJob([
      ["plan_ready", 10],
      ["approve", 10],
      ["waiting", 3_000],
      ["start", 40_000],
      ["unreachable", 1_000],
      ["fail", 700_000],
    ]);
    await runJob([
      ["plan_ready", 10],
      ["approve", 10],
      ["start", 300],
      ["requeue", 5_000],
      ["start", 900],
      ["cancel", 1_500],
    ]);
    await runJob([["plan_ready", 10]]); // still PLANNED
    await runJob([["cancel", 10]]);
    // The same paths with their events written together.
    await runJob(
      [
        ["plan_ready", 800],
        ["approve", 2_000],
        ["start", 70],
        ["succeed", 4_200],
      ],
      true,
    );
    await runJob(
      [
        ["plan_ready", 10],
        ["approve", 10],
        ["start", 300],
        ["requeue", 5_000],
        ["start", 900],
        ["cancel", 1_500],
      ],
      true,
    );

    const text = await (await api("/metrics")).text();
    const lines = new Set(text.split("\n"));
    const dispatch = await recomputed(["RUNNING"], "QUEUED");
    const duration = await recomputed(["SUCCEEDED", "FAILED", "CANCELLED"], "RUNNING");
    expect(dispatch.length).toBeGreaterThanOrEqual(5);
    for (const line of [
      ...expectedHistogram("skynet_dispatch_latency_seconds", DISPATCH_BUCKETS_S, dispatch),
      ...expectedHistogram("skynet_job_duration_seconds", DURATION_BUCKETS_S, duration),
    ]) {
      expect(lines, line).toContain(line);
    }
    const { results } = await env.DB.prepare("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").all<{
      status: string;
      n: number;
    }>();
    for (const { status, n } of results) expect(lines).toContain(`skynet_jobs{status="${status}"} ${n}`);
    const requeues = await env.DB.prepare(`SELECT COUNT(*) AS n FROM ${JOB_EVENTS} WHERE event = 'requeue'`).first<{
      n: number;
    }>();
    expect(lines).toContain(`skynet_redispatches_total ${requeues?.n}`);
  });

  it("counts an event once when its write is retried", async () => {
    const jobId = await runJob([
      ["plan_ready", 10],
      ["approve", 10],
      ["start", 1_234],
    ]);
    const before = await (await api("/metrics")).text();
    const stub = env.JOB.get(env.JOB.idFromName(jobId)) as DurableObjectStub<JobDO>;
    // The same event again, as after a batch whose answer was lost: the row exists, nothing counts.
    await runInDurableObject(stub, async (i: JobDO) => {
      const e = { kind: "event" as const, seq: 4, fromStatus: "QUEUED", toStatus: "RUNNING", event: "start" };
      insides(i).outbox.add({ ...e, detail: null, at: Date.now(), measure: { histogram: "dispatch", ms: 1234 } });
      await insides(i).drain();
    });
    expect(await (await api("/metrics")).text()).toBe(before);
  });

  it("counts only the new events of a batch some of whose events are already written", async () => {
    const jobId = await runJob([
      ["plan_ready", 10],
      ["approve", 10],
      ["start", 1_234],
    ]);
    const value = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
    const before = await (await api("/metrics")).text();
    const stub = env.JOB.get(env.JOB.idFromName(jobId)) as DurableObjectStub<JobDO>;
    // Seq 4 again (written before; as after a drain whose answer was lost) with a new seq 5 in one
    // batch: only seq 5 may count.
    await runInDurableObject(stub, async (i: JobDO) => {
      const at = Date.now();
      insides(i).outbox.addAll([
        {
          kind: "event",
          seq: 4,
          fromStatus: "QUEUED",
          toStatus: "RUNNING",
          event: "start",
          detail: null,
          at,
          measure: { histogram: "dispatch", ms: 1234 },
        },
        {
          kind: "event",
          seq: 5,
          fromStatus: "RUNNING",
          toStatus: "SUCCEEDED",
          event: "succeed",
          detail: null,
          at,
          measure: { histogram: "duration", ms: 2500 },
        },
      ]);
      await insides(i).drain();
      expect(insides(i).outbox.size()).toBe(0);
    });
    const after = await (await api("/metrics")).text();
    for (const [name, by] of [
      ["skynet_dispatch_latency_seconds_count", 0],
      ["skynet_job_duration_seconds_count", 1],
      ['skynet_jobs{status="SUCCEEDED"}', 1],
    ] as const) {
      expect(value(after, name.replace(/[{}]/g, "\\$&")) - value(before, name.replace(/[{}]/g, "\\$&")), name).toBe(by);
    }
  });
});
