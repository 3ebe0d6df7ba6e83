// R2 retention by the bucket's own lifecycle rules (no listing by the Sentinel): archived logs
// and artifacts expire LOG_RETENTION_DAYS (wrangler.toml [vars]) after upload.
//   node scripts/r2-lifecycle.ts            print the rules (JSON for `wrangler r2 bucket lifecycle set`)
//   node scripts/r2-lifecycle.ts --apply    apply them to the bucket bound as ARCHIVE
// The local runtime (miniflare) keeps no lifecycle rules, so this is checked against the
// configuration in tests and applied to the real bucket at deploy.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");
/** Every key prefix the archive writes (src/jobs/archive-log.ts, src/routes/archive.ts). */
export const ARCHIVE_PREFIXES = ["logs/jobs/", "artifacts/jobs/"];

export interface LifecycleRule {
  id: string;
  enabled: boolean;
  conditions: { prefix: string };
  deleteObjectsTransition: { condition: { type: "Age"; maxAge: number } };
  abortMultipartUploadsTransition: { condition: { type: "Age"; maxAge: number } };
}

export function lifecycleRules(retentionDays: number): { rules: LifecycleRule[] } {
  if (!Number.isInteger(retentionDays) || retentionDays < 1) throw new Error("retention must be whole days ≥ 1");
  return {
    rules: ARCHIVE_PREFIXES.map((prefix) => ({
      id: `skynet-expire-${prefix.split("/")[0]}`,
      enabled: true,
      conditions: { prefix },
      // Seconds, as the R2 API counts them.
      deleteObjectsTransition: { condition: { type: "Age", maxAge: retentionDays * 86_400 } },
      abortMultipartUploadsTransition: { condition: { type: "Age", maxAge: 86_400 } },
    })),
  };
}

/** LOG_RETENTION_DAYS and the ARCHIVE bucket's name, read from wrangler.toml. */
export function archiveConfig(toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8")): {
  bucket: string;
  retentionDays: number;
} {
  const days = /^LOG_RETENTION_DAYS\s*=\s*"(\d+)"/m.exec(toml)?.[1];
  const bucket = /binding\s*=\s*"ARCHIVE"\s*\n\s*bucket_name\s*=\s*"([^"]+)"/.exec(toml)?.[1];
  if (!days || !bucket) throw new Error("wrangler.toml has no LOG_RETENTION_DAYS or ARCHIVE bucket");
  return { bucket, retentionDays: Number(days) };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const { bucket, retentionDays } = archiveConfig();
  const rules = lifecycleRules(retentionDays);
  if (!process.argv.includes("--apply")) {
    process.stdout.write(`${JSON.stringify(rules, null, 2)}\n`);
  } else {
    const dir = mkdtempSync(join(tmpdir(), "skynet-r2-"));
    try {
      const file = join(dir, "lifecycle.json");
      writeFileSync(file, JSON.stringify(rules));
      execFileSync(
        process.execPath,
        [
          join(ROOT, "node_modules/wrangler/bin/wrangler.js"),
          "r2",
          "bucket",
          "lifecycle",
          "set",
          bucket,
          "--file",
          file,
          "--force",
        ],
        { stdio: "inherit", cwd: ROOT },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
