// The service files `skynet-agent service install` writes: a systemd user unit (verified by
// `systemd-analyze verify` where that tool exists) and a launchd plist, rendered by pure functions,
// and the command itself: --dry-run writes nothing, a missing service manager is said plainly.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderLaunchdPlist, renderSystemdUnit, type ServiceSpec, systemdQuote } from "../src/service-files.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const CLI = join(ROOT, "agent/src/cli.ts");
const TOKEN = "skya_0123456789abcdef0123456789abcdef";
const exec = promisify(execFile);
let dir: string;

const spec = (over: Partial<ServiceSpec> = {}): ServiceSpec => ({
  node: process.execPath,
  entry: join(ROOT, "agent/bin/skynet-agent.js"),
  args: ["connect", "--config", "/home/ann/.config/skynet/agent.json", "--workspace", "web=/home/ann/my code/50%$x"],
  drainTimeoutS: 300,
  ...over,
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "skynet-service-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function which(cmd: string): Promise<boolean> {
  return exec("sh", ["-c", `command -v ${cmd}`]).then(
    () => true,
    () => false,
  );
}

describe("systemd user unit", () => {
  it("runs connect with the absolute node and entry, restarts on failure, drains on stop", () => {
    const unit = renderSystemdUnit(spec());
    const exec = unit.split("\n").find((l) => l.startsWith("ExecStart="));
    expect(exec).toBe(
      `ExecStart=${process.execPath} --max-old-space-size=256 --max-semi-space-size=2 ${join(ROOT, "agent/bin/skynet-agent.js")} connect --config /home/ann/.config/skynet/agent.json --workspace "web=/home/ann/my code/50%%$$x"`,
    );
    expect(unit).toMatch(/^Environment=MALLOC_MMAP_THRESHOLD_=131072$/m);
    expect(unit).toMatch(/^Restart=on-failure$/m);
    expect(unit).toMatch(/^RestartPreventExitStatus=2 3 4 5$/m);
    expect(unit).toMatch(/^KillMode=mixed$/m);
    expect(unit).toMatch(/^TimeoutStopSec=330$/m);
    expect(unit).toMatch(/^WantedBy=default.target$/m);
    expect(unit).not.toContain("TOKEN");
  });

  it("refuses relative paths and control characters instead of writing a broken unit", () => {
    expect(() => renderSystemdUnit(spec({ node: "node" }))).toThrow(/absolute/);
    expect(() => renderSystemdUnit(spec({ args: ["connect", "--workspace", "a\nExecStartPre=/bin/evil"] }))).toThrow(
      /control characters/,
    );
    expect(systemdQuote('a"b\\c')).toBe('"a\\"b\\\\c"');
  });

  it("passes systemd-analyze verify", async (ctx) => {
    if (!(await which("systemd-analyze"))) {
      console.log("systemd-analyze is not installed here: the unit is not verified by systemd");
      ctx.skip();
    }
    // verify needs ExecStart's binary to exist; the workspace path in the args need not.
    const unitDir = join(dir, "unit");
    await mkdir(unitDir, { recursive: true });
    const file = join(unitDir, "skynet-agent.service");
    await writeFile(file, renderSystemdUnit(spec()));
    const res = await exec("systemd-analyze", ["verify", "--man=no", file]).then(
      (r) => ({ code: 0, out: `${r.stdout}${r.stderr}` }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: `${e.stdout}${e.stderr}` }),
    );
    // Lines about other units on this machine are not ours; anything naming our file is.
    const ours = res.out.split("\n").filter((l) => l.includes("skynet-agent.service"));
    expect(ours).toEqual([]);
    expect(res.code).toBe(0);
  });
});

describe("launchd agent", () => {
  it("keeps the agent alive after a failure only, with the arguments XML-escaped", () => {
    const plist = renderLaunchdPlist(spec({ args: ["connect", "--workspace", "a=/x/<&>"], logFile: "/tmp/l.log" }));
    expect(plist).toContain("<key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>");
    expect(plist).toContain(`    <string>${process.execPath}</string>\n    <string>--max-old-space-size=256</string>`);
    expect(plist).toContain("<string>a=/x/&lt;&amp;&gt;</string>");
    expect(plist).toContain("<key>ExitTimeOut</key>\n  <integer>330</integer>");
    expect(plist).toContain("<key>StandardErrorPath</key>\n  <string>/tmp/l.log</string>");
  });
});

describe("skynet-agent service install", () => {
  const run = (home: string, ...args: string[]) =>
    exec(process.execPath, [CLI, "service", ...args], { env: { ...process.env, HOME: home } }).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
    );

  it("--dry-run prints the unit and writes nothing; the token is read from the config, not the command line", async () => {
    const home = await mkdtemp(join(dir, "home-"));
    const config = join(home, "agent.json");
    await writeFile(config, JSON.stringify({ serverUrl: "http://127.0.0.1:9", token: TOKEN }), { mode: 0o600 });
    const res = await run(home, "install", "--dry-run", "--config", config, "--workspace", `web=${home}`);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain(`${join(home, ".config/systemd/user/skynet-agent.service")}`);
    expect(res.stdout).toContain(`connect --config ${config} --workspace web=${home}`);
    expect(res.stdout).not.toContain(TOKEN);
    expect(await readdir(home)).toEqual(["agent.json"]);
  });

  it("without a user service manager says so, writes nothing and prints how to run it", async (ctx) => {
    const bus = await exec("systemctl", ["--user", "show-environment"]).then(
      () => true,
      () => false,
    );
    if (bus || process.platform !== "linux") {
      console.log("a systemd user manager answers here: the 'no service manager' path is not exercised");
      ctx.skip();
    }
    const home = await mkdtemp(join(dir, "home-"));
    const config = join(home, "agent.json");
    await writeFile(config, JSON.stringify({ serverUrl: "http://127.0.0.1:9", token: TOKEN }), { mode: 0o600 });
    const res = await run(home, "install", "--config", config, "--workspace", home);
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/cannot install a systemd user unit: .*Nothing was written/);
    expect(res.stdout).toMatch(/instead, run it .*\n .* connect --config /);
    expect(await readdir(home)).toEqual(["agent.json"]);
  });

  it("refuses to install before pairing", async () => {
    const home = await mkdtemp(join(dir, "home-"));
    const res = await exec(
      process.execPath,
      [CLI, "service", "install", "--config", join(home, "none.json"), "--workspace", home],
      {
        env: { ...process.env, HOME: home },
      },
    ).catch((e: { code: number; stderr: string }) => e);
    expect("code" in res && res.code).toBe(2);
    expect("stderr" in res && res.stderr).toMatch(/pair <serverUrl> <code> first/);
  });
});
