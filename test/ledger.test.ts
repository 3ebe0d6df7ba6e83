// The ledger's store functions inside workerd against the real D1 migrations.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  createPairing,
  findActiveToken,
  listWorkers,
  markStaleWorkersOffline,
  redeemPairing,
  revokeToken,
  upsertWorker,
} from "../src/ledger/agent-store.ts";
import { eventJson } from "../src/ledger/job-events.ts";
import {
  appendAudit,
  appendJobEventsQuery,
  getDb,
  getJob,
  LedgerInputError,
  listAudit,
  listJobEvents,
  listJobs,
  updateJobStatus,
  upsertJob,
  upsertJobQuery,
} from "../src/ledger/store.ts";
import { newJobId } from "../src/lib/crypto.ts";

const db = () => getDb(env.DB);

function row(over: Partial<Parameters<typeof upsertJob>[1]> = {}) {
  const now = Date.now();
  return {
    id: newJobId(),
    projectId: "default",
    userId: "u1",
    intent: "check git status",
    status: "CREATED",
    createdAt: now,
    updatedAt: now,
    ...over,
  };
}

describe("jobs", () => {
  it("creates, gets and updates a job; an older snapshot never overwrites a newer one", async () => {
    const r = row();
    await upsertJob(db(), r);
    expect(await getJob(db(), r.id)).toMatchObject({ id: r.id, status: "CREATED", attempt: 0 });
    await upsertJob(db(), { ...r, status: "QUEUED", attempt: 1, updatedAt: r.updatedAt + 10 });
    await upsertJob(db(), { ...r, status: "PLANNED", updatedAt: r.updatedAt + 5 });
    expect((await getJob(db(), r.id))?.status).toBe("QUEUED");
    expect(await updateJobStatus(db(), r.id, "RUNNING", { at: r.updatedAt + 20 })).toBe(true);
    expect(await updateJobStatus(db(), r.id, "QUEUED", { at: r.updatedAt + 1 })).toBe(false);
    expect((await getJob(db(), r.id))?.status).toBe("RUNNING");
    expect(await getJob(db(), "job_doesnotexist00")).toBeNull();
  });

  it("lists newest first with a status filter and cursor pagination that neither skips nor repeats", async () => {
    const base = Date.now() + 1_000_000;
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      // two rows share each timestamp, so the cursor must break ties by id
      const r = row({ createdAt: base + Math.floor(i / 2), updatedAt: base, status: "SUCCEEDED", userId: "pager" });
      ids.push(r.id);
      await upsertJob(db(), r);
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await listJobs(db(), { userId: "pager", limit: 3, cursor });
      seen.push(...page.jobs.map((j) => j.id));
      cursor = page.nextCursor ?? undefined;
      pages += 1;
    } while (cursor);
    expect(pages).toBe(3);
    expect(new Set(seen).size).toBe(7);
    expect([...seen].sort()).toEqual([...ids].sort());
    const created = (await listJobs(db(), { userId: "pager", status: "CREATED" })).jobs;
    expect(created).toHaveLength(0);
    await expect(listJobs(db(), { cursor: "not-a-cursor" })).rejects.toBeInstanceOf(LedgerInputError);
  });
});

describe("events and audit", () => {
  it("appends events idempotently by (job, seq), in order", async () => {
    const r = row();
    const at = Date.now();
    const append = (e: Parameters<typeof eventJson>[0]) => appendJobEventsQuery(db(), r, [eventJson(e)]).run();
    await append({ seq: 1, fromStatus: null, toStatus: "CREATED", event: "create", at });
    await append({ seq: 3, fromStatus: "PLANNED", toStatus: "QUEUED", event: "approve", at, detail: { by: "u1" } });
    await append({ seq: 3, fromStatus: "PLANNED", toStatus: "QUEUED", event: "approve", at });
    // An older event that was held back (a parked write, replayed later) still lands, in seq order.
    await append({ seq: 2, fromStatus: "CREATED", toStatus: "PLANNED", event: "plan_ready", at });
    const events = await listJobEvents(db(), r.id);
    expect(events.map((e) => e.toStatus)).toEqual(["CREATED", "PLANNED", "QUEUED"]);
    expect(events[2]?.detail).toBe('{"by":"u1"}');
  });
  it("appends audit entries", async () => {
    const jobId = newJobId();
    await appendAudit(db(), { actor: "42", action: "approve", jobId, detail: { risk: "ADMIN" }, at: Date.now() });
    const [entry] = await listAudit(db(), { jobId });
    expect(entry).toMatchObject({ actor: "42", action: "approve", jobId });
    expect(JSON.parse(entry?.detail ?? "{}")).toEqual({ risk: "ADMIN" });
  });
});

describe("workers and tokens", () => {
  it("upserts workers and marks silent ones OFFLINE", async () => {
    const now = Date.now();
    const w = {
      name: "laptop",
      capabilities: ["git"],
      workspaces: ["default"],
      status: "ONLINE" as const,
      running: 0,
      maxConcurrency: 1,
      version: "0.1.0",
    };
    await upsertWorker(db(), { ...w, id: "agent_fresh", at: now });
    await upsertWorker(db(), { ...w, id: "agent_silent", at: now - 600_000 });
    const offline = await markStaleWorkersOffline(db(), now - 180_000);
    expect(offline).toContain("agent_silent");
    expect(offline).not.toContain("agent_fresh");
    const all = await listWorkers(db(), { status: "OFFLINE" });
    expect(all.find((x) => x.id === "agent_silent")?.capabilities).toEqual(["git"]);
  });

  it("redeems a pairing code once, never after expiry, and revokes tokens", async () => {
    const now = Date.now();
    await createPairing(db(), {
      id: "tok_00000000000000a1",
      agentId: "agent_a1",
      name: "a",
      codeHash: "code-hash-a1",
      expiresAt: now + 60_000,
      createdBy: "test",
      at: now,
    });
    await createPairing(db(), {
      id: "tok_00000000000000a2",
      agentId: "agent_a2",
      name: "b",
      codeHash: "code-hash-a2",
      expiresAt: now - 1,
      createdBy: "test",
      at: now,
    });
    const first = await redeemPairing(db(), { codeHash: "code-hash-a1", tokenHash: "th-1", name: "a", now });
    expect(first).toMatchObject({ agentId: "agent_a1" });
    expect(await redeemPairing(db(), { codeHash: "code-hash-a1", tokenHash: "th-2", name: "a", now })).toBeNull();
    expect(await redeemPairing(db(), { codeHash: "code-hash-a2", tokenHash: "th-3", name: "b", now })).toBeNull();
    expect((await findActiveToken(db(), "th-1"))?.agentId).toBe("agent_a1");
    expect(await revokeToken(db(), "tok_00000000000000a1", now)).toEqual({ agentId: "agent_a1" });
    expect(await findActiveToken(db(), "th-1")).toBeNull();
    expect(await revokeToken(db(), "tok_00000000000000a1", now)).toBeNull();
  });
});

describe("ledger snapshots and index writes", () => {
  const written = async (q: ReturnType<typeof upsertJobQuery>) => (await q.run()).meta.rows_written;

  it("leaves the status and chat indexes alone when the snapshot before had the same values", async () => {
    const r = row({ chatId: "c1", messageId: 7 });
    await upsertJob(db(), r);
    const before = { status: r.status, chatId: r.chatId, messageId: r.messageId };
    // The same status and message: only the row itself is rewritten, not the index entries.
    const all = await written(upsertJobQuery(db(), { ...r, attempt: 1, updatedAt: r.updatedAt + 1 }));
    const lean = await written(upsertJobQuery(db(), { ...r, attempt: 2, updatedAt: r.updatedAt + 2 }, before));
    // Each indexed group left in the SET list costs index writes of its own.
    const chatMoved = { ...before, messageId: 6 };
    const statusMoved = { ...before, status: "PLANNED" };
    const chat = await written(upsertJobQuery(db(), { ...r, attempt: 3, updatedAt: r.updatedAt + 3 }, chatMoved));
    const status = await written(upsertJobQuery(db(), { ...r, attempt: 4, updatedAt: r.updatedAt + 4 }, statusMoved));
    expect(lean).toBeLessThan(chat);
    expect(lean).toBeLessThan(status);
    expect(Math.max(chat, status)).toBeLessThan(all);
    expect(await getJob(db(), r.id)).toMatchObject({ status: "CREATED", chatId: "c1", messageId: 7, attempt: 4 });
    // What changed is written, status and message alike.
    await upsertJobQuery(db(), { ...r, status: "QUEUED", messageId: 8, updatedAt: r.updatedAt + 5 }, before).run();
    expect(await getJob(db(), r.id)).toMatchObject({ status: "QUEUED", chatId: "c1", messageId: 8 });
    expect((await listJobs(db(), { status: "QUEUED" })).jobs.map((j) => j.id)).toContain(r.id);
  });
});

describe("job events", () => {
  it("ride on the job's row: a commit's events cost one row written; a replay adds nothing", async () => {
    const r = row();
    await upsertJob(db(), r);
    const events = [1, 2, 3].map((seq) =>
      eventJson({
        seq,
        fromStatus: null,
        toStatus: "CREATED",
        event: "e",
        at: seq,
        detail: { steps: [{ seq: seq + 1, ok: true }], note: `{"seq":${seq + 1},"from":null` },
      }),
    );
    expect((await appendJobEventsQuery(db(), r, events).run()).meta.rows_written).toBe(1);
    await appendJobEventsQuery(db(), r, events).run();
    // A detail holding what looks like another event's start is not taken for that event.
    await appendJobEventsQuery(db(), r, [
      eventJson({ seq: 4, fromStatus: null, toStatus: "QUEUED", event: "e", at: 4 }),
    ]).run();
    expect((await listJobEvents(db(), r.id)).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
  });
});
