// R2 retention is the bucket's lifecycle rules (scripts/r2-lifecycle.ts), not a Sentinel listing:
// the rules cover every key the archive writes and expire them after LOG_RETENTION_DAYS.
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { archiveConfig, lifecycleRules } from "../../scripts/r2-lifecycle.ts";

const ROOT = resolve(import.meta.dirname, "../..");

describe("R2 lifecycle rules", () => {
  it("expire every archived log and artifact after LOG_RETENTION_DAYS from wrangler.toml", async () => {
    const { bucket, retentionDays } = archiveConfig();
    expect(bucket).toBe("skynet-archive");
    const { stdout } = await promisify(execFile)(process.execPath, [resolve(ROOT, "scripts/r2-lifecycle.ts")]);
    const printed = JSON.parse(stdout) as ReturnType<typeof lifecycleRules>;
    expect(printed).toEqual(lifecycleRules(retentionDays));
    // The keys the Worker writes to R2 (archive-log.ts, artifacts.ts), read from their source.
    const sources = await Promise.all(
      ["src/jobs/archive-log.ts", "src/archive/artifacts.ts"].map((f) => readFile(resolve(ROOT, f), "utf8")),
    );
    const keys = sources.flatMap((src) => [...src.matchAll(/`([a-z]+\/jobs\/)\$\{/g)].map((m) => `${m[1]}job_x`));
    expect(keys.length).toBeGreaterThanOrEqual(2);
    for (const key of keys) {
      const rule = printed.rules.find((r) => key.startsWith(r.conditions.prefix));
      expect(rule, key).toBeDefined();
      expect(rule?.enabled).toBe(true);
      expect(rule?.deleteObjectsTransition.condition).toEqual({ type: "Age", maxAge: retentionDays * 86_400 });
    }
  });

  it("reads the retention from the configuration and refuses a nonsensical one", () => {
    const toml = 'LOG_RETENTION_DAYS = "12"\n[[r2_buckets]]\nbinding = "ARCHIVE"\nbucket_name = "b"\n';
    expect(archiveConfig(toml)).toEqual({ bucket: "b", retentionDays: 12 });
    expect(() => archiveConfig("")).toThrow();
    expect(() => lifecycleRules(0)).toThrow();
  });
});
