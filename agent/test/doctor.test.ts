// doctor's clock-skew judgement (pure) and its workspace checks on real directories.
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeGitRepo } from "../../test/helpers/node/git-repo.ts";
import { clockCheck, renderCheck, workspaceChecks } from "../src/doctor-checks.ts";

describe("doctor", () => {
  it("says how far and which way the clock is off, beyond the round trip", () => {
    const at = Date.parse("2026-11-25T12:00:00.000Z");
    expect(clockCheck({ at, sent: at - 100, received: at + 100, resolutionMs: 0 }).level).toBe("OK");
    const ahead = clockCheck({ at, sent: at + 30_000, received: at + 30_200, resolutionMs: 0 });
    expect(ahead).toMatchObject({ level: "WARN", detail: expect.stringMatching(/^30s ahead of the server/) });
    expect(ahead.fix).toMatch(/timedatectl set-ntp true/);
    const behind = clockCheck({ at, sent: at - 90_000, received: at - 89_000, resolutionMs: 1000 });
    expect(behind.detail).toMatch(/^90s behind the server/);
    // A slow round trip is not called skew.
    expect(clockCheck({ at, sent: at - 8000, received: at + 8000, resolutionMs: 0 }).level).toBe("OK");
    expect(clockCheck({ at: Number.NaN, sent: at, received: at, resolutionMs: 0 }).detail).toMatch(/unknown/);
  });

  it("checks each workspace: present, writable, a git repository", async () => {
    const repo = await makeGitRepo();
    const plain = await mkdtemp(join(tmpdir(), "skynet-doctor-"));
    const locked = await mkdtemp(join(tmpdir(), "skynet-doctor-"));
    await chmod(locked, 0o500);
    try {
      const checks = await workspaceChecks({ a: repo.dir, b: plain, c: join(plain, "gone"), d: locked });
      const lines = checks.map(renderCheck);
      expect(lines[0]).toMatch(/^OK {3}workspace a: .*git repository/);
      expect(lines[1]).toMatch(/^WARN workspace b: .* is not a git repository\n {5}fix: git -C .* init$/);
      expect(lines[2]).toMatch(/^FAIL workspace c: .*gone is not a directory/);
      // root may write anywhere: the check is only meaningful for an ordinary user.
      if (process.getuid?.() !== 0) expect(lines[3]).toMatch(/^FAIL workspace d: .* is not writable/);
      expect((await workspaceChecks({}))[0]?.level).toBe("WARN");
    } finally {
      await chmod(locked, 0o700);
      await repo.cleanup();
      await rm(plain, { recursive: true, force: true });
      await rm(locked, { recursive: true, force: true });
    }
  });
});
