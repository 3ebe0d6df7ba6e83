// The registry's writes to the ledger's workers rows (issue 18, item 5): a job costs no D1 row
// written. An agent's load (a BUSY/ONLINE flip) is never written as a job starts or ends, only by
// a heartbeat once the gap since the last load write (hello's included) has passed; online and
// offline are written at once.
// A controlled clock stands in for the passing minutes; the rows are real D1 rows.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { LOAD_WRITE_GAP_MS, WorkerLedger } from "../src/agents/worker-ledger.ts";
import { newJobId } from "../src/lib/crypto.ts";

type WorkerRow = { status: string; running: number; updated_at: number; last_heartbeat_at: number };

const rowOf = (id: string) =>
  env.DB.prepare("SELECT status, running, updated_at, last_heartbeat_at FROM workers WHERE id = ?")
    .bind(id)
    .first<WorkerRow>();

describe("the workers row an agent's jobs touch", () => {
  it("is not written as jobs start and end, and catches up by heartbeat at most once per gap", async () => {
    let clock = 1_000_000;
    const ledger = new WorkerLedger(env, 180, () => clock);
    const agentId = `agt_${newJobId().slice(4)}`;
    await ledger.hello(
      {
        agentId,
        name: "steady",
        capabilities: ["git"],
        workspaces: ["p"],
        maxConcurrency: 2,
        allowShell: false,
        version: "1",
      },
      0,
    );
    expect(await rowOf(agentId)).toMatchObject({ status: "ONLINE", running: 0, updated_at: 1_000_000 });

    // A job starting soon after hello: no write, not even by a heartbeat within the gap.
    clock += 10;
    await ledger.load(agentId, 1);
    clock += 5_000;
    await ledger.heartbeat(agentId, 1, 1);
    expect(await rowOf(agentId)).toMatchObject({ status: "ONLINE", running: 0, updated_at: 1_000_000 });
    // Twenty more jobs start and finish within the gap: not one write.
    for (let i = 0; i < 20; i++) {
      clock += 100;
      await ledger.load(agentId, 0);
      await ledger.load(agentId, i % 2 === 0 ? 2 : 1);
      await ledger.heartbeat(agentId, i % 2 === 0 ? 2 : 1, 1);
    }
    expect(await rowOf(agentId)).toMatchObject({ status: "ONLINE", running: 0, updated_at: 1_000_000 });

    // Once the gap since hello has passed, the next heartbeat writes the load as it is now.
    clock = 1_000_000 + LOAD_WRITE_GAP_MS;
    await ledger.heartbeat(agentId, 1, 1);
    expect(await rowOf(agentId)).toMatchObject({ status: "BUSY", running: 1, updated_at: clock });
    const busyAt = clock;
    // The job ends just after: the flip back waits out the gap too.
    clock += 1_000;
    await ledger.load(agentId, 0);
    expect(await ledger.heartbeat(agentId, 0, 0)).toBe(true);
    expect(await rowOf(agentId)).toMatchObject({ status: "BUSY", running: 1, updated_at: busyAt });
    clock = busyAt + LOAD_WRITE_GAP_MS;
    await ledger.heartbeat(agentId, 0, 0);
    expect(await rowOf(agentId)).toMatchObject({ status: "ONLINE", running: 0, updated_at: clock });
    // A heartbeat with nothing changed, soon after, writes nothing.
    const written = clock;
    clock += 1_000;
    await ledger.heartbeat(agentId, 0, 0);
    expect(await rowOf(agentId)).toMatchObject({ updated_at: written, last_heartbeat_at: written });

    // A heartbeat write is one D1 row (no index on the heartbeat time, migration 0013).
    const touch = await env.DB.prepare("UPDATE workers SET last_heartbeat_at = ?, updated_at = ? WHERE id = ?")
      .bind(clock, clock, agentId)
      .run();
    expect(touch.meta.rows_written).toBe(1);

    // Leaving is written at once, whatever the gap.
    clock += 10;
    await ledger.offline(agentId, true);
    expect(await rowOf(agentId)).toMatchObject({ status: "OFFLINE", updated_at: clock });
  });
});
