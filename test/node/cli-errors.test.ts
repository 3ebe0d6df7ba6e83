// Both CLIs (skynet, skynet-agent) as real child processes: a usage mistake exits 2 with what was
// wrong, a bug (an unexpected exception, here a TypeError injected into console.log through
// --import) exits 70 with its stack and says it is a bug, and a config file with a misspelt key
// or a bad value exits 2 naming it.
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
const AGENT = resolve(ROOT, "agent/src/cli.ts");
const SKYNET = resolve(ROOT, "scripts/skynet.ts");
const INJECT_BUG = 'data:text/javascript,console.log=()=>{throw new TypeError("injected fault")}';
const TOKEN = "a".repeat(32);

type Run = { code: number | null; stdout: string; stderr: string };

function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      args,
      { cwd: ROOT, env: { ...process.env, SKYNET_CONFIG: "/nonexistent/skynet.json", ...env }, timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
        done({ code, stdout, stderr });
      },
    );
  });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "skynet-cli-errors-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("usage errors exit 2", () => {
  it("skynet-agent: an unknown flag, an unknown command, a bad number", async () => {
    const flag = await run([AGENT, "connect", "--bogus"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("Unknown option '--bogus'");
    expect(flag.stderr).not.toContain("this is a bug");
    const cmd = await run([AGENT, "frobnicate"]);
    expect(cmd.code).toBe(2);
    expect(cmd.stderr).toContain('unknown command "frobnicate"');
    expect(cmd.stderr).toContain("usage: skynet-agent <command>");
    const num = await run([
      AGENT,
      "connect",
      "--server",
      "http://127.0.0.1:9",
      "--token",
      TOKEN,
      "--workspace",
      `default=${dir}`,
      "--max-concurrency",
      "ten",
    ]);
    expect(num.code).toBe(2);
    expect(num.stderr).toContain("maxConcurrency");
  });

  it("skynet: an unknown flag and an unknown command", async () => {
    const flag = await run([SKYNET, "jobs", "--bogus"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("Unknown option '--bogus'");
    const cmd = await run([SKYNET, "frobnicate", "--url", "http://127.0.0.1:9", "--token", TOKEN]);
    expect(cmd.code).toBe(2);
    expect(cmd.stderr).toContain('unknown command "frobnicate"');
    expect(cmd.stderr).not.toContain("this is a bug");
  });

  it("skynet: allow/deny/permissions refuse a missing or malformed request id before asking the server", async () => {
    const conn = ["--url", "http://127.0.0.1:9", "--token", TOKEN];
    const cases: [string[], string][] = [
      [["allow"], "allow needs a permission request id"],
      [["allow", "../../etc"], '"../../etc" is not a permission request id'],
      [["allow", "pr_aaaaaaaaaaaa", "pr_bbbbbbbbbbbb"], "allow takes one permission request id"],
      [["deny"], "deny needs a job id (job_…) or a permission request id (pr_…)"],
      [["deny", "pr_a"], '"pr_a" is not a permission request id'],
      [["permissions", "approve"], 'unknown permissions command "approve"'],
    ];
    for (const [args, said] of cases) {
      const res = await run([SKYNET, ...args, ...conn]);
      expect(res.code, args.join(" ")).toBe(2);
      expect(res.stderr).toContain(said);
      // Refused before any request: the unreachable server is never mentioned.
      expect(res.stderr).not.toContain("cannot reach");
    }
    // A well-formed id goes to the server (here unreachable: exit 1, not a usage error).
    const sent = await run([SKYNET, "deny", "pr_aaaaaaaaaaaa", ...conn]);
    expect(sent.code).toBe(1);
    expect(sent.stderr).toContain("cannot reach http://127.0.0.1:9");
  });
});

describe("a bug is not a usage error", () => {
  for (const [name, entry] of [
    ["skynet-agent", AGENT],
    ["skynet", SKYNET],
  ] as const) {
    it(`${name}: an unexpected TypeError exits 70 with its stack and a bug line`, async () => {
      const r = await run(["--import", INJECT_BUG, entry, "--version"]);
      expect(r.code).toBe(70);
      expect(r.stderr).toContain("TypeError: injected fault");
      expect(r.stderr).toMatch(/\n {4}at /);
      expect(r.stderr).toContain(`${name}: this is a bug (exit 70)`);
    });
  }
});

describe("the agent's config file", () => {
  it("refuses a misspelt key and a bad value, naming them (exit 2)", async () => {
    const typo = join(dir, "typo.json");
    await writeFile(typo, JSON.stringify({ serverUrl: "http://127.0.0.1:9", token: TOKEN, secretPath: {} }));
    for (const args of [
      ["status", "--config", typo],
      ["connect", "--config", typo, "--workspace", `default=${dir}`],
    ]) {
      const r = await run([AGENT, ...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${typo}: Unrecognized key: "secretPath"`);
    }
    const bad = join(dir, "bad.json");
    await writeFile(bad, JSON.stringify({ serverUrl: "ftp://example.com", token: TOKEN }));
    const r = await run([AGENT, "status", "--config", bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("serverUrl: the server URL must be http(s)");
  });

  it("a missing config file is 'not paired', not an error", async () => {
    const r = await run([AGENT, "status", "--config", join(dir, "absent.json")]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("not paired");
  });
});
