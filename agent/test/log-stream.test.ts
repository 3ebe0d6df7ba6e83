// The LogChunker joins only what one frame needs: whatever sizes the pipe delivers, the frames
// are in order, each at most MAX_LOG_CHUNK_BYTES of whole UTF-8 characters, and together they
// are the output, byte for byte.
import { describe, expect, it } from "vitest";
import { MAX_LOG_CHUNK_BYTES } from "../../protocol/index.ts";
import { LogChunker, type LogFrameInput } from "../src/log-stream.ts";

function output(bytes: number): Buffer {
  // ASCII, 2-, 3- and 4-byte characters mixed, so pipe reads and frame cuts split characters.
  return Buffer.from("a€ßz😀 line\n".repeat(Math.ceil(bytes / 17)), "utf8");
}

async function chunk(input: Buffer, sizes: (i: number) => number): Promise<LogFrameInput[]> {
  const frames: LogFrameInput[] = [];
  const chunker = new LogChunker(async (f) => void frames.push(f), { intervalMs: 60_000 });
  for (let at = 0, i = 0; at < input.length; i++) {
    const size = Math.max(1, sizes(i));
    await chunker.write("stdout", input.subarray(at, at + size));
    at += size;
  }
  await chunker.flush(true);
  return frames;
}

describe("LogChunker", () => {
  it.each([
    ["one-byte reads", () => 1, 200_000],
    ["pipe-sized reads", () => 65_536, 1_000_000],
    ["odd reads that split characters", (i: number) => 4_093 + ((i * 7919) % 70_001), 3_000_000],
    ["reads larger than a frame", () => 300_001, 2_000_000],
  ])("%s: frames are whole characters, bounded, in order, and byte-exact", async (_name, sizes, bytes) => {
    const input = output(bytes);
    const frames = await chunk(input, sizes);
    expect(frames.map((f) => f.seq)).toEqual(frames.map((_, i) => i));
    for (const f of frames) {
      expect(Buffer.byteLength(f.data, "utf8")).toBeLessThanOrEqual(MAX_LOG_CHUNK_BYTES);
      expect(f.data).not.toContain("\uFFFD");
    }
    expect(Buffer.from(frames.map((f) => f.data).join(""), "utf8").equals(input)).toBe(true);
    // Full frames until the last: reads are joined up to a frame's size, not sent as they came.
    const full = frames.slice(0, -1).filter((f) => Buffer.byteLength(f.data, "utf8") < MAX_LOG_CHUNK_BYTES - 3);
    expect(full).toEqual([]);
  });
});
