// A step's process tree: descendants that leave its process group (setsid) die on cancel, and no
// step outlives its agent (the agent CLI SIGKILLed mid-step). Processes are found through /proc
// by a unique marker in their argv, and each test first sees them running.
import { type ChildProcess, spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { processesMentioning as pidsWith } from "../../test/helpers/node/processes.ts";
import { waitFor } from "../../test/helpers/node/wait.ts";
import { containment } from "../src/contain.ts";
import { spec, TOKEN } from "./fake-registry.ts";
import { type Harness, harness, step } from "./security-harness.ts";

const ROOT = resolve(import.meta.dirname, "../..");
let h: Harness;
const children: ChildProcess[] = [];

const markers: string[] = [];
/** A unique `sleep` duration: it shows in argv and nothing else on the machine has it. */
const uniqueSleep = () => {
  const marker = `${1000 + Math.floor(Math.random() * 1e6)}.${process.pid}`;
  markers.push(marker);
  return marker;
};

/** A step that starts a setsid() escapee ignoring TERM, then waits itself. */
const escapeeStep = (marker: string) =>
  step(
    "run_command",
    { argv: ["sh", "-c", `setsid sh -c "trap '' TERM; sleep ${marker}" & sleep ${marker}; wait`] },
    "ADMIN",
  );

beforeEach(async () => {
  h = await harness();
});

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  // A failed test must not leave its sleeps behind (they carry this run's unique marker).
  for (const marker of markers.splice(0)) {
    for (const pid of await pidsWith(`sleep ${marker}`)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  await h.close();
});

const linux = process.platform === "linux";

describe.runIf(linux)("containment", () => {
  it("names how steps are contained, once, for the startup log and a future doctor", async () => {
    const c = await containment();
    expect(["pid-namespace", "process-group"]).toContain(c.mode);
    expect(c.detail.length).toBeGreaterThan(20);
  });

  it("cancel kills a setsid() descendant that ignores SIGTERM", async () => {
    const marker = uniqueSleep();
    await h.start({ allowShell: true, cancelGraceMs: 300 });
    const s = spec([escapeeStep(marker)]);
    h.server.offer(s);
    await waitFor(async () => (await pidsWith(`sleep ${marker}`)).length >= 2, {
      what: "the step and its escapee to run",
    });
    h.server.send({ type: "job_cancel", jobId: s.jobId, attempt: 1, reason: "user asked" });
    const done = await h.server.waitFor("job_finished", (f) => f.jobId === s.jobId);
    expect(done.status).toBe("CANCELLED");
    await waitFor(async () => (await pidsWith(`sleep ${marker}`)).length === 0, {
      what: "every process of the step to be gone",
      timeoutMs: 10_000,
    });
  });

  it("a step that exits leaves no background descendant behind", async () => {
    const marker = uniqueSleep();
    await h.start({ allowShell: true });
    const { result } = await h.run([
      step("run_command", { argv: ["sh", "-c", `setsid sleep ${marker} & echo started`] }, "ADMIN"),
    ]);
    expect(result.status).toBe("SUCCEEDED");
    await waitFor(async () => (await pidsWith(`sleep ${marker}`)).length === 0, {
      what: "the detached sleep to be gone",
      timeoutMs: 10_000,
    });
  });

  /** Starts the real agent CLI against the fake registry and waits until it is connected. */
  async function startCli(env: Record<string, string> = {}): Promise<{ proc: ChildProcess; output: () => string }> {
    const proc = spawn(
      process.execPath,
      [
        join(ROOT, "agent/src/cli.ts"),
        "connect",
        "--server",
        h.server.url,
        "--config",
        join(h.outside, "no-config.json"),
        "--workspace",
        `default=${h.repo.dir}`,
        "--allow-shell",
      ],
      { env: { ...process.env, SKYNET_AGENT_TOKEN: TOKEN, ...env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    children.push(proc);
    let output = "";
    proc.stderr?.on("data", (d: Buffer) => {
      output += d.toString();
    });
    proc.stdout?.on("data", (d: Buffer) => {
      output += d.toString();
    });
    await h.server.waitFor("hello");
    await waitFor(() => output.includes("connected"), { what: "the agent CLI to connect" });
    return { proc, output: () => output };
  }

  async function killAgentMidStep(env: Record<string, string>, escapee: boolean): Promise<string> {
    const marker = uniqueSleep();
    const cli = await startCli(env);
    const s = spec([
      escapee ? escapeeStep(marker) : step("run_command", { argv: ["sh", "-c", `sleep ${marker}`] }, "ADMIN"),
    ]);
    h.server.offer(s);
    const expected = escapee ? 2 : 1;
    await waitFor(async () => (await pidsWith(`sleep ${marker}`)).length >= expected, {
      what: "the step's processes to run",
    });
    const exited = new Promise((r) => cli.proc.once("exit", r));
    cli.proc.kill("SIGKILL");
    await exited;
    await waitFor(async () => (await pidsWith(`sleep ${marker}`)).length === 0, {
      what: "the step's processes to die with their agent",
      timeoutMs: 10_000,
    });
    return cli.output();
  }

  it("a step (and its setsid() escapee) dies within seconds when the agent is SIGKILLed", async () => {
    const output = await killAgentMidStep({}, (await containment()).mode === "pid-namespace");
    expect(output).toContain("containment:");
  });

  it("in the process-group fallback a step still dies with its agent, and the startup log says so", async () => {
    const output = await killAgentMidStep({ SKYNET_AGENT_NO_CONTAINMENT: "1" }, false);
    expect(output).toMatch(/containment: .*process group/);
  });
});
