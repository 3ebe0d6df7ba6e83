// The batcher's rules on their own: a linger, bounds on count and size, frames that go at once,
// and holds (a journal write for the next frame) that keep a batch together.
import { describe, expect, it } from "vitest";
import { AgentToServerSchema, type BatchableMessage } from "../../protocol/index.ts";
import { FrameBatcher } from "../src/frame-batcher.ts";

const fence = { jobId: "job_batcher00000001", attempt: 1, leaseToken: "t".repeat(32) };
const log = (seq: number, data = `line ${seq}\n`): BatchableMessage => ({
  type: "log",
  ...fence,
  seq,
  stream: "stdout",
  data,
});
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What was sent, each WebSocket frame as the list of the seqs (or types) it carried. */
function recorder() {
  const sent: string[][] = [];
  const send = (text: string | Buffer) => {
    const msg = JSON.parse(String(text)) as { type: string; frames?: BatchableMessage[] };
    const frames: BatchableMessage[] = msg.type === "batch" ? (msg.frames ?? []) : [msg as BatchableMessage];
    sent.push(frames.map((f) => (f.type === "log" ? String(f.seq) : f.type)));
  };
  return { sent, send };
}

describe("FrameBatcher", () => {
  it("gathers frames for the linger, then sends them as one batch in order", async () => {
    const { sent, send } = recorder();
    const b = new FrameBatcher(send, { lingerMs: 5 });
    for (let i = 0; i < 3; i++) b.add(log(i), false);
    expect(sent).toEqual([]);
    await pause(50);
    expect(sent).toEqual([["0", "1", "2"]]);
  });

  it("sends an accept with nothing after it when its own linger ends: a long step never holds it back", async () => {
    const { sent, send } = recorder();
    // The ordinary linger is long here: only the accept's window can send this batch.
    const b = new FrameBatcher(send, { lingerMs: 60_000, acceptLingerMs: 5 });
    b.add({ type: "job_accept", ...fence }, false);
    // The step's start is being journaled: the accept waits for it, then both go by the linger.
    b.hold();
    await pause(20);
    expect(sent).toEqual([]);
    b.add({ type: "step_started", ...fence, stepId: "s1", startedAt: new Date().toISOString() }, false);
    b.release();
    // The step runs on (no frame for a while): the batch goes anyway, the accept first.
    await pause(50);
    expect(sent).toEqual([["job_accept", "step_started"]]);
  });

  it("sends at once a frame marked so, with what waited before it", () => {
    const { sent, send } = recorder();
    const b = new FrameBatcher(send, { lingerMs: 60_000 });
    b.add(log(0), false);
    b.add({ type: "step_started", ...fence, stepId: "s1", startedAt: new Date().toISOString() }, true);
    expect(sent).toEqual([["0", "step_started"]]);
    expect(b.waiting).toBe(0);
  });

  it("keeps to the count and size bounds; a frame over the size bound goes alone", () => {
    const { sent, send } = recorder();
    const b = new FrameBatcher(send, { lingerMs: 60_000, maxFrames: 2, maxBytes: 1000 });
    for (let i = 0; i < 5; i++) b.add(log(i), false);
    expect(sent).toEqual([
      ["0", "1"],
      ["2", "3"],
    ]);
    b.add(log(5, "x".repeat(2000)), false);
    expect(sent.slice(2)).toEqual([["4"], ["5"]]);
    b.add(log(6, "y".repeat(600)), false);
    b.add(log(7, "z".repeat(600)), false);
    expect(sent.slice(4)).toEqual([["6"]]);
    b.flush();
    expect(sent.slice(5)).toEqual([["7"]]);
  });

  it("a linger ending during a hold waits for the next frame, then lingers again", async () => {
    const { sent, send } = recorder();
    const b = new FrameBatcher(send, { lingerMs: 2 });
    b.add(log(0), false);
    b.hold();
    await pause(30);
    expect(sent).toEqual([]);
    b.add(log(1), false);
    b.release();
    b.hold();
    b.add({ type: "step_finished", ...fence, stepId: "s1", outcome: "succeeded", exitCode: 0, durationMs: 1 }, false);
    b.release();
    await pause(30);
    expect(sent).toEqual([["0", "1", "step_finished"]]);
  });

  it("drops what waits when the connection is gone", async () => {
    const { sent, send } = recorder();
    const b = new FrameBatcher(send, { lingerMs: 2 });
    b.add(log(0), false);
    b.drop();
    await pause(30);
    expect(sent).toEqual([]);
    expect(b.waiting).toBe(0);
  });

  it("sends a batch as the UTF-8 bytes of its frames' JSON joined, whatever the text", () => {
    const sent: (string | Buffer)[] = [];
    let t = 1000;
    const b = new FrameBatcher(
      (data) => void sent.push(data),
      { lingerMs: 60_000, acceptLingerMs: 60_000 },
      () => t,
    );
    const accept: BatchableMessage = { type: "job_accept", ...fence };
    const logs = [log(0, "a€ßz😀 ünï\n"), log(1, '"quoted" \\ back\u0001slash\n'), log(2, "語".repeat(5000))];
    b.add(accept, false);
    for (const f of logs) b.add(f, false);
    t += 7;
    b.flush();
    expect(sent).toHaveLength(1);
    const [batch] = sent;
    expect(Buffer.isBuffer(batch)).toBe(true);
    const frames = [JSON.stringify({ ...accept, heldMs: 7 }), ...logs.map((f) => JSON.stringify(f))];
    expect(batch?.toString()).toBe(`{"type":"batch","frames":[${frames.join(",")}]}`);
  });

  it("writes the next batches into a sent batch's buffer only once the socket is done with it", () => {
    const sent: { data: Buffer; done?: (err?: Error | null) => void }[] = [];
    const b = new FrameBatcher((data, done) => void sent.push({ data: data as Buffer, done }), {
      lingerMs: 60_000,
    });
    const batchOf = (first: number) => {
      b.add(log(first, `${"a".repeat(100)} ${first}\n`), false);
      b.add(log(first + 1, `${"b".repeat(100)} ${first + 1}\n`), false);
      b.flush();
    };
    const seqs = (data: Buffer) =>
      (JSON.parse(data.toString()) as { frames: { seq: number }[] }).frames.map((f) => f.seq);
    // Three batches in flight, none done: each in memory of its own, each still as sent.
    batchOf(0);
    batchOf(2);
    batchOf(4);
    const [one, two, three] = sent;
    expect(new Set(sent.map((s) => s.data.buffer)).size).toBe(3);
    expect([one, two, three].map((s) => seqs(s?.data as Buffer))).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
    ]);
    // The first is done: the next batch is written where it was. The second failed: not reused.
    one?.done?.();
    two?.done?.(new Error("socket closed"));
    batchOf(6);
    batchOf(8);
    expect(sent[3]?.data.buffer).toBe(one?.data.buffer);
    expect(sent[4]?.data.buffer).not.toBe(two?.data.buffer);
    expect(seqs(sent[3]?.data as Buffer)).toEqual([6, 7]);
    expect(seqs(sent[4]?.data as Buffer)).toEqual([8, 9]);
    expect(seqs(three?.data as Buffer)).toEqual([4, 5]);
  });

  describe("an accept's heldMs", () => {
    /** Every frame sent, parsed and checked against the protocol's schema as the server would. */
    function frames() {
      const out: BatchableMessage[][] = [];
      const send = (text: string | Buffer) => {
        const msg = AgentToServerSchema.parse(JSON.parse(String(text)));
        out.push(msg.type === "batch" ? msg.frames : [msg as BatchableMessage]);
      };
      return { out, send };
    }
    const accept: BatchableMessage = { type: "job_accept", ...fence };
    const started: BatchableMessage = {
      type: "step_started",
      ...fence,
      stepId: "s1",
      startedAt: "2026-01-01T00:00:00Z",
    };

    it("is stamped when its batch goes: how long it waited since it was added, by the batcher's clock", () => {
      const { out, send } = frames();
      let t = 1_000;
      const b = new FrameBatcher(send, { lingerMs: 60_000, acceptLingerMs: 60_000 }, () => t);
      b.add(accept, false);
      t += 12;
      // A journal write for the step's start holds the batch: that wait counts too.
      b.hold();
      t += 25.4;
      b.add(started, false);
      b.release();
      b.flush();
      expect(out).toEqual([[{ ...accept, heldMs: 37 }, started]]);
    });

    it("is 0 for an accept that goes at once, and never more than the protocol allows", () => {
      const { out, send } = frames();
      let t = 0;
      const b = new FrameBatcher(send, { lingerMs: 60_000, acceptLingerMs: 60_000 }, () => t);
      b.add(accept, true);
      b.add({ ...accept, attempt: 2 }, false);
      t += 3_600_000;
      b.flush();
      expect(out).toEqual([[{ ...accept, heldMs: 0 }], [{ ...accept, attempt: 2, heldMs: 60_000 }]]);
    });

    it("replaces whatever heldMs the frame came with", () => {
      const { out, send } = frames();
      let t = 0;
      const b = new FrameBatcher(send, { lingerMs: 60_000, acceptLingerMs: 60_000 }, () => t);
      b.add({ ...accept, heldMs: 59_000 }, false);
      t += 4;
      b.flush();
      expect(out).toEqual([[{ ...accept, heldMs: 4 }]]);
    });

    it("covers at least the linger it waited out, on the real monotonic clock", async () => {
      const { out, send } = frames();
      const b = new FrameBatcher(send, { lingerMs: 60_000, acceptLingerMs: 40 });
      b.add(accept, false);
      await pause(150);
      const [first] = out[0] ?? [];
      expect(first?.type).toBe("job_accept");
      // A timer may fire a millisecond early, and heldMs is rounded: a floor, never a ceiling.
      expect(first?.type === "job_accept" ? first.heldMs : undefined).toBeGreaterThanOrEqual(38);
    });
  });
});
