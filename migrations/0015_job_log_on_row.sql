-- A job's final log on its own row when it is small (issue 17/18 follow-up): at most
-- LEDGER_LOG_MAX_BYTES (4 KiB) of UTF-8, written once by the archive_log effect with one UPDATE,
-- instead of an R2 put (a Class A operation, the largest line of the per-job bill, and the most
-- CPU of the job's end in workerd). A larger log goes to R2 as before; null: not archived here
-- (still live, in R2, or emptied after LOG_RETENTION_DAYS by the Sentinel). No index reads it,
-- and the list queries select their columns, so only GET /api/jobs/:id/log reads it.
-- ADD COLUMN works on the WITHOUT ROWID table of migration 0014 (a nullable column with no
-- default changes no stored row).
ALTER TABLE `jobs` ADD COLUMN `log` text;
