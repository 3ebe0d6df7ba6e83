// A notification Telegram refuses for now (429 retry_after) waits its turn without holding back
// the ledger, the events or the dispatch.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { JobDO } from "../src/jobs/job-do.ts";
import { newJobId } from "../src/lib/crypto.ts";
import { insides } from "./helpers/job-insides.ts";
import { failNext } from "./helpers/telegram.ts";
import { JOB_EVENTS } from "./helpers/worker.ts";

const CHAT = -9001;

describe("notifications in the outbox", () => {
  it("postpones a rate-limited notification by retry_after and still writes the ledger", async () => {
    await failNext("sendMessage", CHAT, {
      errorCode: 429,
      description: "Too Many Requests: retry after 30",
      retryAfter: 30,
      times: 10,
    });
    const jobId = newJobId();
    const stub = env.JOB.get(env.JOB.idFromName(jobId));
    const input = { jobId, projectId: "default", intent: "check git status", userId: "42", chatId: String(CHAT) };
    // Plan inside the object (as its alarm does) and let the outbox drain.
    await runInDurableObject(stub, async (i: JobDO) => {
      await insides(i).createUnplanned(input);
      const s = insides(i).load();
      if (!s) throw new Error("no state");
      await insides(i).plan(s);
      await insides(i).afterChange();
    });
    const ledger = await env.DB.prepare("SELECT status FROM jobs WHERE id = ?").bind(jobId).first<{ status: string }>();
    expect(ledger?.status).toBe("QUEUED");
    const events = await env.DB.prepare(`SELECT COUNT(*) AS n FROM ${JOB_EVENTS} WHERE job_id = ?`)
      .bind(jobId)
      .first<{ n: number }>();
    expect(events?.n).toBe(3);
    const pending = await runInDurableObject(stub, (i: JobDO) => insides(i).outbox.items());
    expect(pending).toHaveLength(1);
    expect(pending[0]).toMatchObject({ kind: "notify", tries: 0, parked: false });
    expect((pending[0]?.nextAt ?? 0) - Date.now()).toBeGreaterThan(25_000);
  });
});
