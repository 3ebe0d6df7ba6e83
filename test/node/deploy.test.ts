// `wrangler deploy --dry-run`: the Worker bundles for production with every binding in place.
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");

describe("deploy", () => {
  it("wrangler deploy --dry-run bundles the Worker with all bindings", async () => {
    const out = await mkdtemp(join(tmpdir(), "skynet-dry-"));
    try {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [join(ROOT, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", out],
        { cwd: ROOT, env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1" } },
      );
      for (const binding of [
        "env.JOB (JobDO)",
        "env.AGENT_REGISTRY (AgentRegistryDO)",
        "env.DB (skynet-ledger)",
        "env.ARCHIVE (skynet-archive)",
        "env.DISPATCH_QUEUE (skynet-dispatch)",
      ]) {
        expect(stdout).toContain(binding);
      }
      const files = await readdir(out);
      expect(files).toContain("index.js");
      expect((await stat(join(out, "index.js"))).size).toBeGreaterThan(10_000);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, 120_000);
});
