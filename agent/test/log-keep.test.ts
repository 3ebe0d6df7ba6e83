// The journal's log frames keep their text as UTF-8 in reused slabs (log-keep.ts): a kept frame
// serialises byte for byte as the original, across slab reuse and a new lease token; its text is
// not held as a string; a string that would not survive UTF-8 is kept as it is; and a frame read
// after the journal let it go fails rather than reading another frame's bytes.
import { describe, expect, it } from "vitest";
import type { FencedAgentMessage } from "../../protocol/index.ts";
import type { Job } from "../src/job-book.ts";
import { JobReporter } from "../src/job-reporter.ts";
import { LogKeep } from "../src/log-keep.ts";
import { LogChunker } from "../src/log-stream.ts";
import { Wire } from "../src/wire.ts";
import { WebSocket } from "../src/ws.ts";
import { spec } from "./fake-registry.ts";

type LogFrame = Extract<FencedAgentMessage, { type: "log" }>;

function frame(seq: number, data: string): LogFrame {
  return { type: "log", jobId: "j1", attempt: 1, leaseToken: "t1", seq, stream: "stdout", stepId: "s1", data };
}

/** Varied text: ASCII, 2-, 3- and 4-byte characters, different per frame. */
function text(seq: number, chars: number): string {
  const alphabet = ["a", "é", "€", "😀", "\n", "z", "ß", " "];
  let s = `#${seq} `;
  for (let i = 0; s.length < chars; i++) s += alphabet[(seq * 31 + i * 7) % alphabet.length];
  return s;
}

describe("LogKeep", () => {
  it("gives back every kept frame byte for byte while slabs are reused, and holds the text as bytes only", () => {
    const keep = new LogKeep();
    const journal: { kept: LogFrame; json: string }[] = [];
    let keptChars = 0;
    let maxCapacity = 0;
    for (let seq = 0; seq < 400; seq++) {
      const original = frame(seq, text(seq, 20_000 + ((seq * 7919) % 45_000)));
      const kept = keep.keep(original);
      expect(Object.getOwnPropertyDescriptor(kept, "data")?.value).toBeUndefined();
      journal.push({ kept, json: JSON.stringify(original) });
      keptChars += original.data.length;
      // Like the journal: the oldest frames go once more than 1 MiB of text is kept.
      while (keptChars > 1024 * 1024) {
        const old = journal.shift();
        if (!old) break;
        keptChars -= keep.release(old.kept);
      }
      for (const { kept: k, json } of journal.slice(-3)) expect(JSON.stringify(k)).toBe(json);
      maxCapacity = Math.max(maxCapacity, keep.capacity);
    }
    for (const { kept, json } of journal) expect(JSON.stringify(kept)).toBe(json);
    expect(keptChars).toBe(journal.reduce((n, f) => n + f.kept.data.length, 0));
    // 400 frames of ≈ 40–170 KB went through; the slabs were reused, not one per MiB written.
    expect(maxCapacity).toBeLessThanOrEqual(6 * 1024 * 1024);
  });

  it("keeps a string with a lone surrogate as it is (UTF-8 would change it)", () => {
    const keep = new LogKeep();
    const original = frame(0, "half \ud83d of a pair");
    const kept = keep.keep(original);
    expect(kept).toBe(original);
    expect(keep.release(kept)).toBe(original.data.length);
  });

  it("fails to read a frame whose slab was reused after the journal let it go", () => {
    const keep = new LogKeep();
    const first = keep.keep(frame(0, "x".repeat(600_000)));
    keep.keep(frame(1, "y".repeat(600_000)));
    keep.release(first);
    keep.keep(frame(2, "z".repeat(600_000)));
    expect(() => first.data).toThrow(/let it go/);
  });

  it("relabels a kept frame with a new lease token, its text and key order unchanged", () => {
    const keep = new LogKeep();
    const original = frame(3, text(3, 1000));
    const relabelled = keep.relabel(keep.keep(original), "t2");
    expect(JSON.stringify(relabelled)).toBe(JSON.stringify({ ...original, leaseToken: "t2" }));
    expect(Object.getOwnPropertyDescriptor(relabelled, "data")?.value).toBeUndefined();
    expect(keep.release(relabelled)).toBe(original.data.length);
  });
});

describe("the job's journal", () => {
  it("keeps its last 4 MiB of log text as bytes, replayed after a reconnect byte for byte", async () => {
    // A socket that only records what the agent writes on it (the frames are what is tested).
    const sent: string[] = [];
    const socket = { readyState: WebSocket.OPEN, bufferedAmount: 0, send: (t: string) => void sent.push(t) };
    const wire = new Wire();
    wire.attach(socket as unknown as WebSocket);
    wire.welcomed = true;
    const reporter = new JobReporter(
      wire,
      null,
      () => false,
      () => undefined,
    );
    const job: Job = {
      jobId: "j1",
      attempt: 1,
      leaseToken: "t1",
      spec: spec([]),
      abort: new AbortController(),
      chunker: new LogChunker(async () => undefined),
      journal: [],
      journalLogBytes: 0,
      unsentLogBytes: 0,
      finished: false,
      fenced: false,
    };
    const originals: LogFrame[] = [];
    for (let seq = 0; seq < 150; seq++) {
      const f = frame(seq, text(seq, 60_000));
      originals.push(f);
      await reporter.send(job, f);
    }
    const logs = job.journal.filter((f) => f.type === "log");
    for (const f of logs) expect(Object.getOwnPropertyDescriptor(f, "data")?.value).toBeUndefined();
    const keptChars = logs.reduce((n, f) => n + f.data.length, 0);
    expect(keptChars).toBeLessThanOrEqual(4 * 1024 * 1024);
    expect(keptChars).toBeGreaterThan(4 * 1024 * 1024 - 60_000);
    expect(job.journalLogBytes).toBe(keptChars);

    reporter.relabel(job, "t2");
    wire.batcher.flush();
    sent.length = 0;
    reporter.replay([job]);
    const expected = originals.slice(-logs.length).map((f) => JSON.stringify({ ...f, leaseToken: "t2" }));
    expect(sent).toEqual(expected);
  });
});
