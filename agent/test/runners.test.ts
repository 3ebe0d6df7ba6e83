// The runner's argv is read from the workspace's own files; with nothing to run the step gets a
// sentence saying why, never a guessed command.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runnerCommand } from "../src/runners.ts";

const dirs: string[] = [];
async function workspace(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "skynet-runners-"));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe("runnerCommand", () => {
  it("runs the package's own script, passing the step's args after --", async () => {
    const dir = await workspace({ "package.json": JSON.stringify({ scripts: { test: "vitest" } }) });
    expect(await runnerCommand(dir, "run_tests", undefined, ["-t", "adds"])).toEqual({
      ok: true,
      value: ["npm", "run", "test", "--", "-t", "adds"],
    });
    expect(await runnerCommand(dir, "install_deps", undefined, [])).toEqual({ ok: true, value: ["npm", "install"] });
  });

  it("says which script is missing, and that no runner was found in an empty workspace", async () => {
    const dir = await workspace({ "package.json": JSON.stringify({ scripts: { test: "vitest" } }) });
    expect(await runnerCommand(dir, "build_project", undefined, [])).toEqual({
      ok: false,
      error: 'package.json has no "build" script',
    });
    const empty = await workspace({});
    expect(await runnerCommand(empty, "run_tests", undefined, [])).toEqual({
      ok: false,
      error: expect.stringMatching(/^no runner detected/),
    });
  });

  it("uses the runner the step names over the one the files suggest", async () => {
    const dir = await workspace({ "package.json": "{}", Makefile: "test:\n\ttrue\n" });
    expect(await runnerCommand(dir, "run_tests", "make", [])).toEqual({ ok: true, value: ["make", "test"] });
  });
});
