// Hostile repositories: a .git/config (or what it includes) and .gitattributes that try to make
// the agent's git commands run a program. Each attack writes a sentinel file outside the
// workspace if it works; every test asserts the sentinel never appears.
import { execFileSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from "vitest";
import { gitOverrides, PendingScan } from "../src/git-safety.ts";
import { type Harness, harness, step } from "./security-harness.ts";

let h: Harness;
const touch = (name: string) => `touch '${join(h.outside, name)}'`;

/** An executable script in the workspace that drops a sentinel (for settings that name a program). */
async function script(name: string): Promise<string> {
  const path = join(h.repo.dir, name);
  await writeFile(path, `#!/bin/sh\n${touch(name)}\ncat >/dev/null\nexit 0\n`);
  await chmod(path, 0o755);
  return path;
}

/** Rewrites a tracked file with new content so git has to look at it. */
const modify = (path: string, content = "changed\n") => writeFile(join(h.repo.dir, path), content);

beforeEach(async () => {
  h = await harness({ "README.md": "# demo\n", "src/a.txt": "alpha\n" });
});

afterEach(async () => {
  await h.close();
});

describe("READ_ONLY git actions never run a program the repository names", () => {
  it("core.fsmonitor (the issue-12 attack) does not run on git status", async () => {
    await h.repo.git("config", "core.fsmonitor", touch("fsmonitor"));
    await modify("src/a.txt");
    await h.start();
    const { result, log } = await h.run([step("git_status")]);
    expect(result.status).toBe("SUCCEEDED");
    expect(log).toContain("src/a.txt");
    expect(await h.sentinels()).toEqual([]);
  });

  it("core.fsmonitor pulled in through include.path from a workspace file does not run", async () => {
    await writeFile(join(h.repo.dir, "evil.cfg"), `[core]\n\tfsmonitor = ${touch("included")}\n`);
    await h.repo.git("config", "include.path", "../evil.cfg");
    await h.start();
    const { result } = await h.run([step("git_status")]);
    expect(result.status).toBe("SUCCEEDED");
    expect(await h.sentinels()).toEqual([]);
  });

  it("a clean filter named by .gitattributes does not run on git diff", async () => {
    await writeFile(join(h.repo.dir, ".gitattributes"), "*.txt filter=evil\n");
    await h.repo.git("config", "filter.evil.clean", `${touch("clean")}; cat`);
    await h.repo.git("config", "filter.evil.required", "true");
    await modify("src/a.txt");
    await h.start();
    const { result, log } = await h.run([step("git_diff")]);
    expect(result.status).toBe("SUCCEEDED");
    expect(log).toContain("+changed");
    expect(await h.sentinels()).toEqual([]);
  });

  it("a long-running filter process does not start", async () => {
    await writeFile(join(h.repo.dir, ".gitattributes"), "*.txt filter=proc\n");
    await h.repo.git("config", "filter.proc.process", touch("process"));
    await modify("src/a.txt");
    await h.start();
    await h.run([step("git_diff"), step("git_status", {}, "READ_ONLY", "s2")]);
    expect(await h.sentinels()).toEqual([]);
  });

  it("diff.external and a diff driver's command do not run", async () => {
    await writeFile(join(h.repo.dir, ".gitattributes"), "*.md diff=evil\n");
    await h.repo.git("config", "diff.external", await script("external"));
    await h.repo.git("config", "diff.evil.command", await script("drivercmd"));
    await modify("README.md");
    await modify("src/a.txt");
    await h.start();
    const { result } = await h.run([step("git_diff")]);
    expect(result.status).toBe("SUCCEEDED");
    expect(await h.sentinels()).toEqual([]);
  });

  it("a textconv driver does not run on git diff", async () => {
    await writeFile(join(h.repo.dir, ".gitattributes"), "*.md diff=conv\n");
    await h.repo.git("config", "diff.conv.textconv", `${touch("textconv")}; cat`);
    await modify("README.md");
    await h.start();
    const { result, log } = await h.run([step("git_diff", { path: "README.md" })]);
    expect(result.status).toBe("SUCCEEDED");
    expect(log).toContain("+changed");
    expect(await h.sentinels()).toEqual([]);
  });

  it("hooks (post-index-change through core.hooksPath) do not run on git status", async () => {
    await mkdir(join(h.repo.dir, "hooks"));
    const hook = join(h.repo.dir, "hooks", "post-index-change");
    await writeFile(hook, `#!/bin/sh\n${touch("hook")}\n`);
    await chmod(hook, 0o755);
    await h.repo.git("config", "core.hooksPath", "hooks");
    // Same content, new mtime: git status would refresh and rewrite the index.
    await modify("README.md", "# demo\n");
    await h.start();
    const { result } = await h.run([step("git_status")]);
    expect(result.status).toBe("SUCCEEDED");
    expect(await h.sentinels()).toEqual([]);
  });

  it("gpg.program does not run when the repository turns on log.showSignature", async () => {
    // A commit with a (bogus) signature: `git log --show-signature` would hand it to gpg.program.
    const raw = execFileSync("git", ["cat-file", "commit", "HEAD"], { cwd: h.repo.dir, encoding: "utf8" });
    const signed = raw.replace(
      /^(committer .*)$/m,
      "$1\ngpgsig -----BEGIN PGP SIGNATURE-----\n \n iQEzBAABCAAdFiEE\n -----END PGP SIGNATURE-----",
    );
    const sha = execFileSync("git", ["hash-object", "-t", "commit", "-w", "--stdin"], {
      cwd: h.repo.dir,
      input: signed,
      encoding: "utf8",
    }).trim();
    await h.repo.git("update-ref", "HEAD", sha);
    await h.repo.git("config", "log.showSignature", "true");
    await h.repo.git("config", "gpg.program", await script("gpg"));
    await h.start();
    const { result, log } = await h.run([step("git_log", { limit: 5 })]);
    expect(result.status).toBe("SUCCEEDED");
    expect(log).toContain("initial");
    expect(await h.sentinels()).toEqual([]);
  });

  it("git diff's path is literal: ':(top)' cannot reach outside a workspace that is a subdirectory", async () => {
    await mkdir(join(h.repo.dir, "sub"));
    await writeFile(join(h.repo.dir, "sub", "in.txt"), "in\n");
    await h.repo.git("add", "-A");
    await h.repo.git("commit", "-qm", "sub");
    await modify("src/a.txt", "outside-the-workspace\n");
    await h.start({ workspaces: { default: join(h.repo.dir, "sub") } });
    const { log } = await h.run([step("git_diff", { path: ":(top)src/a.txt" })]);
    expect(log).not.toContain("outside-the-workspace");
    const whole = await h.run([step("git_diff", { path: ":(top)" })]);
    expect(whole.log).not.toContain("outside-the-workspace");
  });

  it("a plain workspace that a plan dressed up as a bare repository is not taken for one", async () => {
    const plain = await mkdtemp(join(tmpdir(), "skynet-plain-"));
    try {
      await h.start({ workspaces: { default: plain } });
      const write = (path: string, content: string, id: string) =>
        step("write_file", { path, content, overwrite: true }, "WRITE", id);
      const made = await h.run([
        write("HEAD", "ref: refs/heads/main\n", "s1"),
        write("config", `[core]\n\tbare = true\n[log]\n\tshowSignature = true\n[gpg]\n\tprogram = /bin/false\n`, "s2"),
        write("objects/info/.keep", "", "s3"),
        write("refs/heads/.keep", "", "s4"),
      ]);
      expect(made.result.status).toBe("SUCCEEDED");
      const { result, log } = await h.run([step("git_log", { limit: 1 })]);
      expect(result.status).toBe("FAILED");
      expect(log).toMatch(/not a git repository|cannot use bare repository/);
    } finally {
      await rm(plain, { recursive: true, force: true });
    }
  });

  it("a git step sees the config an earlier step of the same job wrote (its scan is never older than that step)", async () => {
    // The repository's config includes a workspace file, which a WRITE step may write.
    await h.repo.git("config", "include.path", "../late.cfg");
    await writeFile(join(h.repo.dir, ".gitattributes"), "*.txt filter=late\n");
    await modify("src/a.txt");
    // With a journal, as an installed agent has: the scan then overlaps the step's journal write.
    const state = await mkdtemp(join(tmpdir(), "skynet-state-"));
    onTestFinished(() => rm(state, { recursive: true, force: true }));
    await h.start({ stateDir: state });
    const filter = `[filter "late"]\n\tclean = ${touch("late")}; cat\n\trequired = true\n`;
    const { result, log } = await h.run([
      step("write_file", { path: "late.cfg", content: filter, overwrite: true }, "WRITE", "s1"),
      step("git_diff", {}, "READ_ONLY", "s2"),
      step("git_status", {}, "READ_ONLY", "s3"),
    ]);
    expect(await h.sentinels()).toEqual([]);
    expect(result.status).toBe("SUCCEEDED");
    expect(log).toContain("+changed");
  });

  it("a scan started ahead of a git command serves that command only; the next one scans again", async () => {
    const pending = new PendingScan(h.repo.dir);
    expect((await gitOverrides(h.repo.dir, true, pending)).join("\n")).not.toContain("filter.again");
    await h.repo.git("config", "filter.again.clean", touch("again"));
    const next = await gitOverrides(h.repo.dir, true, pending);
    expect(next).toContain("filter.again.clean=");
    expect(next).toContain("filter.again.required=false");
  });

  it("core.gitProxy (no way to clear it from the command line) is refused with a clear error", async () => {
    await h.repo.git("config", "core.gitProxy", await script("proxy"));
    await h.start();
    const { result, log } = await h.run([step("git_status")]);
    expect(result.status).toBe("FAILED");
    expect(result.steps[0]?.error).toContain("core.gitProxy");
    expect(log).toContain("core.gitProxy");
    expect(await h.sentinels()).toEqual([]);
  });
});

describe("WRITE and ADMIN git actions: transports, credentials and signing stay the user's", () => {
  let bare: string;
  let http: Server | undefined;
  beforeEach(async () => {
    bare = await mkdtemp(join(tmpdir(), "skynet-bare-"));
    execFileSync("git", ["init", "--quiet", "--bare", bare]);
  });
  afterEach(async () => {
    await rm(bare, { recursive: true, force: true });
    await new Promise<void>((r) => (http ? http.close(() => r()) : r()));
    http = undefined;
  });

  /** An HTTP remote that asks for credentials (so git consults helpers and askpass). */
  async function authRemote(): Promise<string> {
    http = createServer((_req, res) => {
      res.writeHead(401, { "WWW-Authenticate": 'Basic realm="x"' });
      res.end();
    });
    await new Promise<void>((r) => http?.listen(0, "127.0.0.1", r));
    const addr = http.address();
    return `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}/repo.git`;
  }

  it("remote.<name>.receivepack from the repository is replaced: the push works, the program does not run", async () => {
    await h.repo.git("remote", "add", "origin", bare);
    await h.repo.git("config", "remote.origin.receivepack", `${touch("receivepack")}; git-receive-pack`);
    await h.start();
    const { result } = await h.run([step("git_push", { remote: "origin", branch: "main" }, "ADMIN")]);
    expect(result.status).toBe("SUCCEEDED");
    expect(execFileSync("git", ["--git-dir", bare, "log", "--format=%s", "main"], { encoding: "utf8" })).toContain(
      "initial",
    );
    expect(await h.sentinels()).toEqual([]);
  });

  it("a push goes only to a configured remote, never to a repository inside the workspace", async () => {
    // A bare repository written into the workspace, with a hook git would run on receive.
    const inside = join(h.repo.dir, "evil.git");
    execFileSync("git", ["init", "--quiet", "--bare", inside]);
    await writeFile(join(inside, "hooks", "post-receive"), `#!/bin/sh\n${touch("post-receive")}\n`);
    await chmod(join(inside, "hooks", "post-receive"), 0o755);
    await h.repo.git("remote", "add", "inside", "./evil.git");
    await h.repo.git("remote", "add", "sneaky", bare);
    await h.repo.git("config", "remote.sneaky.pushurl", inside);
    await h.start();
    for (const remote of ["evil.git", "inside", "sneaky"]) {
      const { result } = await h.run([step("git_push", { remote, branch: "main" }, "ADMIN")]);
      expect(result.status, remote).toBe("FAILED");
      expect(result.steps[0]?.error, remote).toMatch(/not a configured remote|inside the workspace/);
    }
    expect(await h.sentinels()).toEqual([]);
    expect(execFileSync("git", ["--git-dir", inside, "for-each-ref"], { encoding: "utf8" })).toBe("");
  });

  it("core.sshCommand from the repository does not run", async () => {
    await h.repo.git("remote", "add", "origin", "ssh://git@127.0.0.1:1/x.git");
    await h.repo.git("config", "core.sshCommand", `${touch("ssh")}; false`);
    await h.start();
    const { result } = await h.run([step("git_push", { remote: "origin", branch: "main" }, "ADMIN")]);
    expect(result.status).toBe("FAILED");
    expect(await h.sentinels()).toEqual([]);
  });

  it("an ext:: remote is refused even when the repository allows the protocol", async () => {
    await h.repo.git("remote", "add", "evil", `ext::sh -c ${touch("ext").replace(/ /g, "% ")}`);
    await h.repo.git("config", "protocol.ext.allow", "always");
    await h.repo.git("config", "protocol.allow", "always");
    await h.start();
    const { result, log } = await h.run([step("git_push", { remote: "evil", branch: "main" }, "ADMIN")]);
    expect(result.status).toBe("FAILED");
    expect(log).toMatch(/transport 'ext' not allowed/);
    expect(await h.sentinels()).toEqual([]);
  });

  it("credential helpers (generic and URL-specific) and core.askPass from the repository do not run", async () => {
    const url = await authRemote();
    await h.repo.git("remote", "add", "origin", url);
    await h.repo.git("config", "credential.helper", `!${touch("helper")}; echo`);
    await h.repo.git("config", `credential.${url}.helper`, `!${touch("urlhelper")}; echo`);
    await h.repo.git("config", "core.askPass", await script("askpass"));
    await h.start();
    const { result } = await h.run([step("git_push", { remote: "origin", branch: "main" }, "ADMIN")]);
    expect(result.status).toBe("FAILED");
    expect(await h.sentinels()).toEqual([]);
  });

  it("commit.gpgSign with the repository's gpg.program does not run it; the commit is made", async () => {
    await h.repo.git("config", "commit.gpgSign", "true");
    await h.repo.git("config", "gpg.program", await script("commitgpg"));
    await modify("src/a.txt");
    await h.start();
    const { result } = await h.run([step("git_commit", { message: "signed?" }, "WRITE")]);
    expect(result.status).toBe("SUCCEEDED");
    expect(await h.repo.git("log", "-1", "--format=%s")).toContain("signed?");
    expect(await h.sentinels()).toEqual([]);
  });
});

describe("the user's own global config is trusted, the repository's is not", () => {
  const savedHome = process.env.HOME;
  let home: string;
  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), "skynet-home-"));
    await writeFile(join(home, ".gitconfig"), "[credential]\n\thelper = store-of-the-user\n");
    process.env.HOME = home;
  });
  afterEach(async () => {
    process.env.HOME = savedHome;
    await rm(home, { recursive: true, force: true });
  });

  it("keeps a global credential helper and drops the repository's", async () => {
    await h.repo.git("config", "credential.helper", "!evil");
    await h.repo.git("config", "core.fsmonitor", "evil-monitor");
    const overrides = await gitOverrides(h.repo.dir, false);
    expect(overrides).toContain("credential.helper=");
    expect(overrides).toContain("credential.helper=store-of-the-user");
    expect(overrides.join("\n")).not.toContain("!evil");
    expect(overrides).toContain("core.fsmonitor=false");
    // The reset comes before the user's helper is added back.
    expect(overrides.indexOf("credential.helper=")).toBeLessThan(
      overrides.indexOf("credential.helper=store-of-the-user"),
    );
  });
});
