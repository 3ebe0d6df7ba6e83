// R2 retention is the bucket's lifecycle rules (scripts/r2-lifecycle.ts), not a Sentinel listing:
// the rules cover every key the archive writes and expire them after LOG_RETENTION_DAYS.
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { archiveConfig, lifecycleRules } from "../../scripts/r2-lifecycle.ts";
import { artifactKey } from "../../src/archive/artifacts.ts";
import { logKey } from "../../src/jobs/archive-log.ts";

const ROOT = resolve(import.meta.dirname, "../..");

describe("R2 lifecycle rules", () => {
  it("expire every archived log and artifact after LOG_RETENTION_DAYS from wrangler.toml", async () => {
    const { bucket, retentionDays } = archiveConfig();
    expect(bucket).toBe("skynet-archive");
    const { stdout } = await promisify(execFile)(process.execPath, [resolve(ROOT, "scripts/r2-lifecycle.ts")]);
    const printed = JSON.parse(stdout) as ReturnType<typeof lifecycleRules>;
    expect(printed).toEqual(lifecycleRules(retentionDays));
    for (const key of [logKey("job_0123456789abc"), artifactKey("job_0123456789abc", "report.txt")]) {
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
