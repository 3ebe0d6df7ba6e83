// Hostile file actions: writes into .git (directly, by case, through a symlink), secret files
// read, listed, searched, diffed, committed or written, the agent's own config, control
// characters in paths, and the agent's tokens in a step's output.

import { execFileSync } from "node:child_process";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ArtifactNameSchema, checkActionParams } from "../../protocol/index.ts";
import { PathPolicySchema, parsePathFlags } from "../src/config.ts";
import { executeStep } from "../src/executor.ts";
import { TOKEN } from "./fake-registry.ts";
import { exists, type Harness, harness, read, step } from "./security-harness.ts";

let h: Harness;
const SECRET = "sk_live_VERY_SECRET_value_42";
const LEASE = "lease-token-0123456789abcdef";

beforeEach(async () => {
  h = await harness({ "README.md": "# demo\n", "src/a.txt": "alpha\n" });
});

afterEach(async () => {
  await h.close();
});

describe("nothing is written inside .git", () => {
  it("the Worker's validation refuses write_file into .git, a .git file, and case or NTFS variants", () => {
    for (const path of [".git/config", ".git", "sub/.git", ".GIT/config", ".git./hooks/pre-commit", "GIT~1/config"]) {
      const check = checkActionParams("write_file", { path, content: "x" });
      expect(check.ok, path).toBe(false);
      if (!check.ok) expect(check.error).toContain(".git");
    }
    // Reading is not writing: read_file .git/HEAD stays valid params.
    expect(checkActionParams("read_file", { path: ".git/HEAD" }).ok).toBe(true);
  });

  it("the agent refuses write_file .git/config even when the offer skips the Worker", async () => {
    const before = await read(join(h.repo.dir, ".git", "config"));
    await h.start();
    const { reason } = await h.reject([
      step("write_file", { path: ".git/config", content: "[core]\n\tfsmonitor = evil\n", overwrite: true }, "WRITE"),
    ]);
    expect(reason).toContain("writing inside .git");
    expect(await read(join(h.repo.dir, ".git", "config"))).toBe(before);
  });

  it("a symlink x -> .git, then write x/config: refused after resolving the link", async () => {
    await symlink(".git", join(h.repo.dir, "x"));
    await symlink(".git/hooks", join(h.repo.dir, "y"));
    const before = await read(join(h.repo.dir, ".git", "config"));
    await h.start();
    const { result } = await h.run([
      step("write_file", { path: "x/config", content: "[core]\n\tfsmonitor = evil\n", overwrite: true }, "WRITE"),
    ]);
    expect(result.status).toBe("FAILED");
    expect(result.steps[0]?.error).toMatch(/resolves to "\.git\/config", inside \.git/);
    expect(await read(join(h.repo.dir, ".git", "config"))).toBe(before);
    const hook = await h.run([step("write_file", { path: "y/pre-commit", content: "#!/bin/sh\n" }, "WRITE")]);
    expect(hook.result.status).toBe("FAILED");
    expect(await exists(join(h.repo.dir, ".git", "hooks", "pre-commit"))).toBe(false);
  });
});

describe("secret files are off limits", () => {
  beforeEach(async () => {
    await writeFile(join(h.repo.dir, ".dev.vars"), `API_TOKEN=${SECRET}\n`);
    await writeFile(join(h.repo.dir, ".env.local"), `DB_PASSWORD=${SECRET}\n`);
    await mkdir(join(h.repo.dir, ".aws"));
    await writeFile(join(h.repo.dir, ".aws", "credentials"), `aws_secret_access_key=${SECRET}\n`);
    await mkdir(join(h.repo.dir, "deploy"));
    await writeFile(join(h.repo.dir, "deploy", "id_ed25519"), `-----BEGIN OPENSSH PRIVATE KEY-----\n${SECRET}\n`);
  });

  it("read_file .dev.vars, .env.local, keys, cloud credentials, .git/config: refused with the reason; the value is in no frame", async () => {
    await h.start();
    await h.repo.git("config", "http.extraHeader", `Authorization: Bearer ${SECRET}`);
    for (const path of [".dev.vars", ".env.local", "deploy/id_ed25519", ".aws/credentials", ".git/config"]) {
      const { result, frames } = await h.run([step("read_file", { path })]);
      expect(result.status, path).toBe("FAILED");
      expect(result.steps[0]?.error).toContain("is a secret file");
      expect(frames).not.toContain(SECRET);
    }
  });

  it("a symlink to a secret (notes.txt -> .dev.vars) is refused as the secret it resolves to", async () => {
    await symlink(".dev.vars", join(h.repo.dir, "notes.txt"));
    await h.start();
    const { result, frames } = await h.run([step("read_file", { path: "notes.txt" })]);
    expect(result.status).toBe("FAILED");
    expect(result.steps[0]?.error).toContain(".dev.vars");
    expect(frames).not.toContain(SECRET);
  });

  it("list_files shows secrets as withheld and does not descend into secret directories", async () => {
    await h.start();
    const { result, log } = await h.run([step("list_files", { maxDepth: 5 })]);
    expect(result.status).toBe("SUCCEEDED");
    expect(log).toContain(".dev.vars (withheld: secret)");
    expect(log).toContain(".aws/ (withheld: secret)");
    expect(log).not.toContain(".aws/credentials");
    expect(log).toContain("src/a.txt");
    const dir = await h.run([step("list_files", { path: ".aws" })]);
    expect(dir.result.status).toBe("FAILED");
    expect(dir.log).not.toContain("credentials");
  });

  it("search_code never returns a match from a secret file", async () => {
    await writeFile(join(h.repo.dir, "src", "uses.txt"), "reads API_TOKEN from the env\n");
    await h.start();
    const { result, log } = await h.run([step("search_code", { pattern: "API_TOKEN" })]);
    expect(result.status).toBe("SUCCEEDED");
    expect(log).toContain("src/uses.txt:1");
    expect(log).not.toContain(".dev.vars:");
    const direct = await h.run([step("search_code", { pattern: SECRET })]);
    expect(direct.log).not.toMatch(/(dev\.vars|env\.local|id_ed25519|credentials):\d+/);
    expect(direct.log).toContain("no matches");
    expect(direct.log).toContain("secret file(s) not searched");
  });

  it("write_file to .env, .dev.vars or .aws/credentials is refused and creates nothing", async () => {
    await h.start();
    for (const path of [".env", ".dev.vars", ".aws2/x", ".npmrc", "keys/server.pem"]) {
      const { result } = await h.run([step("write_file", { path, content: "X=1\n", overwrite: true }, "WRITE")]);
      expect(result.status, path).toBe(path === ".aws2/x" ? "SUCCEEDED" : "FAILED");
    }
    expect(await exists(join(h.repo.dir, ".env"))).toBe(false);
    expect(await exists(join(h.repo.dir, "keys"))).toBe(false);
    expect(await exists(join(h.repo.dir, ".npmrc"))).toBe(false);
    expect(await read(join(h.repo.dir, ".dev.vars"))).toContain(SECRET);
  });

  it("git diff leaves out a tracked secret file; git commit does not stage one", async () => {
    await h.repo.git("add", "-f", ".dev.vars");
    await h.repo.git("commit", "-qm", "oops, tracked");
    await writeFile(join(h.repo.dir, ".dev.vars"), `API_TOKEN=${SECRET}-rotated\n`);
    await writeFile(join(h.repo.dir, "src", "a.txt"), "changed\n");
    await h.start();
    const diff = await h.run([step("git_diff")]);
    expect(diff.log).toContain("+changed");
    expect(diff.frames).not.toContain(SECRET);
    const diffPath = await h.run([step("git_diff", { path: ".dev.vars" })]);
    expect(diffPath.result.status).toBe("FAILED");
    expect(diffPath.frames).not.toContain(SECRET);
    const commit = await h.run([step("git_commit", { message: "work" }, "WRITE")]);
    expect(commit.result.status).toBe("SUCCEEDED");
    const committed = await h.repo.git("show", "--name-only", "--format=", "HEAD");
    expect(committed).toContain("src/a.txt");
    expect(committed).not.toContain(".env.local");
    expect(committed).not.toContain(".dev.vars");
    expect(committed).not.toContain("id_ed25519");
  });

  it("the agent's own config file is never readable, whatever its name", async () => {
    await writeFile(join(h.repo.dir, "agent-settings.json"), JSON.stringify({ token: TOKEN }));
    await h.start({ configPath: join(h.repo.dir, "agent-settings.json") });
    const { result, frames } = await h.run([step("read_file", { path: "agent-settings.json" })]);
    expect(result.status).toBe("FAILED");
    expect(result.steps[0]?.error).toContain("agent's configuration");
    expect(frames).not.toContain(TOKEN);
  });

  it("deny and allow globs per workspace: private/** is denied, .env.example is allowed", async () => {
    await mkdir(join(h.repo.dir, "private"));
    await writeFile(join(h.repo.dir, "private", "notes.md"), "diary\n");
    await writeFile(join(h.repo.dir, ".env.example"), "DB_PASSWORD=changeme\n");
    await h.start({
      secretPaths: { default: { deny: ["private"], allow: [".env.example"] }, "*": { deny: [], allow: [] } },
    });
    const denied = await h.run([step("read_file", { path: "private/notes.md" })]);
    expect(denied.result.status).toBe("FAILED");
    expect(denied.frames).not.toContain("diary");
    const allowed = await h.run([step("read_file", { path: ".env.example" })]);
    expect(allowed.result.status).toBe("SUCCEEDED");
    expect(allowed.log).toContain("changeme");
    const stillDenied = await h.run([step("read_file", { path: ".env.local" })]);
    expect(stillDenied.result.status).toBe("FAILED");
  });
});

describe("odd files and configuration", () => {
  it("read_file of a FIFO is refused instead of hanging the step", async () => {
    execFileSync("mkfifo", [join(h.repo.dir, "pipe")]);
    await h.start();
    const { result } = await h.run([step("read_file", { path: "pipe" })]);
    expect(result.status).toBe("FAILED");
    expect(result.steps[0]?.error).toContain("not a regular file");
  });

  it("--deny-path/--allow-path flags become per-project (or all-workspace) globs the config accepts", () => {
    const policies = parsePathFlags(["private", "api=*.sqlite"], [".env.example"], {
      web: { deny: ["dumps"], allow: [] },
    });
    expect(policies).toEqual({
      "*": { deny: ["private"], allow: [".env.example"] },
      api: { deny: ["*.sqlite"], allow: [] },
      web: { deny: ["dumps"], allow: [] },
    });
    expect(PathPolicySchema.safeParse(policies).success).toBe(true);
    expect(PathPolicySchema.safeParse({ "*": { deny: ["a\nb"], allow: [] } }).success).toBe(false);
  });
});

describe("control characters and invisible characters in paths", () => {
  it("are refused by validation and by the agent, and nothing is written", async () => {
    for (const name of ["evil\nname.log", "esc\u001b[31m.log", "s1-run_tests.log\r"]) {
      expect(ArtifactNameSchema.safeParse(name).success, JSON.stringify(name)).toBe(false);
    }
    for (const path of [
      "evil\nname.txt",
      "a\rb",
      "tab\there",
      "esc\u001b[31m.txt",
      "rlo\u202egnp.js",
      "zw\u200bsp.txt",
    ]) {
      const check = checkActionParams("write_file", { path, content: "x" });
      expect(check.ok, JSON.stringify(path)).toBe(false);
    }
    await h.start();
    const { reason } = await h.reject([
      step("write_file", { path: "evil\nINFO fake line.txt", content: "x" }, "WRITE"),
    ]);
    expect(reason).toContain("control characters");
    expect(await h.repo.git("status", "--porcelain")).toBe("");
    const readBack = await h.reject([step("read_file", { path: "README.md\u0007" })]);
    expect(readBack.reason).toContain("control characters");
  });
});

describe("the agent's tokens never leave a step", () => {
  it("are redacted from log frames, also when split across two writes", async () => {
    await h.start({ allowShell: true });
    const half = TOKEN.length >> 1;
    const { frames, log } = await h.run([
      step("run_command", { argv: ["echo", `token=${TOKEN} lease=${LEASE}`] }, "ADMIN"),
      step(
        "run_command",
        {
          argv: ["sh", "-c", `printf '%s' '${TOKEN.slice(0, half)}'; sleep 0.3; printf '%s\\n' '${TOKEN.slice(half)}'`],
        },
        "ADMIN",
        "s2",
      ),
    ]);
    expect(frames).not.toContain(TOKEN);
    expect(frames).not.toContain(LEASE);
    expect(log).toContain("token=[redacted] lease=[redacted]");
    expect(log.match(/\[redacted\]/g)?.length).toBeGreaterThanOrEqual(4);
  });

  it("are redacted from the captured output kept for an artifact and from step errors", async () => {
    const out: Buffer[] = [];
    const run = await executeStep(
      {
        id: "s1",
        action: "run_command",
        params: { argv: ["sh", "-c", `echo ${TOKEN}; exit 3`] },
        risk: "ADMIN",
        timeoutS: 30,
      },
      {
        workspace: h.repo.dir,
        allowShell: true,
        timeoutMs: 30_000,
        outputCapBytes: 1 << 20,
        cancelGraceMs: 500,
        signal: new AbortController().signal,
        out: async (_s, d) => void out.push(d),
        captureBytes: 1 << 20,
        redact: [TOKEN],
      },
    );
    expect(run.outcome).toBe("failed");
    expect(run.captured?.toString()).toContain("[redacted]");
    expect(run.captured?.toString()).not.toContain(TOKEN);
    expect(Buffer.concat(out).toString()).not.toContain(TOKEN);
  });
});
