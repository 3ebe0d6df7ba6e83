// The agent's socket compresses what it sends, except on a loopback connection: there the bytes
// cost nothing to move and deflating them (and the Worker inflating them) is only CPU — on the
// bench machine it held varied log text at ≈ 40 MB/s against ≈ 58 MB/s uncompressed. Shown by the
// bytes that crossed the registry's TCP socket for a step printing 1 MiB of highly compressible
// text: all of it over loopback; a small part of it over another of this machine's addresses.
// Either way the text arrives byte for byte (the batches' buffers are reused once sent).
import { networkInterfaces } from "node:os";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type GitRepo, makeGitRepo } from "../../test/helpers/node/git-repo.ts";
import type { Agent } from "../src/agent.ts";
import { isLoopback } from "../src/wire.ts";
import { FakeRegistry, spec } from "./fake-registry.ts";
import { startTestAgent, testConfig } from "./test-agent.ts";

let repo: GitRepo;
let server: FakeRegistry | null = null;
const run = { lines: [] as string[], agents: [] as Agent[] };

beforeEach(async () => {
  repo = await makeGitRepo({ "README.md": "# compression\n" });
});

afterEach(async () => {
  for (const a of run.agents.splice(0)) await a.stop(0);
  await server?.close();
  server = null;
  await repo.cleanup();
});

const SIZE = 1024 * 1024;

/** Bytes over the wire for a step printing SIZE bytes of one repeated line, against `host`. */
async function bytesFor(host: string): Promise<{ bytesIn: number; stdout: string }> {
  server = await new FakeRegistry({ deflate: true, host }).start();
  await startTestAgent(testConfig(server.url, repo.dir, { allowShell: true }), run);
  const before = server.bytesIn;
  const job = spec([
    {
      id: "s1",
      action: "run_command",
      params: { argv: ["sh", "-c", `yes 'a line of a log that repeats' | head -c ${SIZE}`] },
      risk: "ADMIN",
      timeoutS: 60,
    },
  ]);
  server.offer(job);
  const done = await server.waitFor("job_finished", (f) => f.jobId === job.jobId, 30_000);
  expect(done.status).toBe("SUCCEEDED");
  const stdout = server
    .of("log", job.jobId)
    .filter((f) => f.stream === "stdout")
    .sort((a, b) => a.seq - b.seq)
    .map((f) => f.data)
    .join("");
  return { bytesIn: server.bytesIn - before, stdout };
}

/** What the step prints, byte for byte. */
const EXPECTED = "a line of a log that repeats\n".repeat(SIZE / 29 + 1).slice(0, SIZE);

/** An address of this machine that is not loopback (IPv4), if it has one. */
const external = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === "IPv4" && !a.internal)?.address;

describe("the agent socket's compression", () => {
  it("sends a loopback connection's messages uncompressed", async () => {
    const { bytesIn, stdout } = await bytesFor("127.0.0.1");
    expect(stdout === EXPECTED).toBe(true);
    expect(bytesIn).toBeGreaterThan(SIZE);
  });

  it.skipIf(!external)("compresses over an address that is not loopback", async () => {
    const { bytesIn, stdout } = await bytesFor(external as string);
    expect(stdout === EXPECTED).toBe(true);
    expect(bytesIn).toBeLessThan(SIZE / 10);
  });

  it("tells loopback addresses from others", () => {
    for (const a of ["127.0.0.1", "127.5.5.5", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"])
      expect(isLoopback(a)).toBe(true);
    for (const a of ["10.0.0.1", "192.168.1.5", "128.0.0.1", "::ffff:10.0.0.1", "2001:db8::1", "::", "", undefined])
      expect(isLoopback(a)).toBe(false);
  });
});
