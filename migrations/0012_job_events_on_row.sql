-- Fewer D1 rows per job (issue 18 item 5). A job's transitions were one job_events row each
-- (an insert billed per event); they now ride on the job's own row, as a JSON array ordered by
-- seq (`events`), appended by the same upsert that writes the job's snapshot. Every existing
-- event moves onto its job's row; the table is dropped (events of a job with no row had no
-- reader and are left behind).
ALTER TABLE `jobs` ADD COLUMN `events` text NOT NULL DEFAULT '[]';
UPDATE `jobs` SET `events` = (
  SELECT json_group_array(json_object('seq', e.`seq`, 'from', e.`from_status`, 'to', e.`to_status`,
           'event', e.`event`, 'detail', json(e.`detail`), 'at', e.`at`))
  FROM (SELECT * FROM `job_events` WHERE `job_id` = `jobs`.`id` ORDER BY `seq`) AS e
) WHERE `id` IN (SELECT `job_id` FROM `job_events`);
DROP TABLE `job_events`;

-- The /metrics counters a job's transitions move (jobs by status, the two latency histograms,
-- re-dispatches) were one upserted row per counter name: they are now one JSON object in one
-- row, updated by one statement per ledger commit. The histograms' sums, kept on their bucket
-- rows since migration 0011, become one key per histogram again (only their total was read).
CREATE TABLE `job_metrics` (
	`id` integer PRIMARY KEY NOT NULL,
	`data` text NOT NULL DEFAULT '{}'
);
INSERT INTO `job_metrics` (`id`, `data`)
SELECT 1, COALESCE(json_group_object(`name`, `value`), '{}') FROM (
  SELECT `name`, `value` FROM `counters`
  WHERE `name` GLOB 'jobs_status:*' OR `name` = 'events:requeue' OR `name` GLOB 'hist:*:le:*'
  UNION ALL
  SELECT 'hist:' || h || ':sum_ms', (SELECT COALESCE(SUM(`sum_ms`), 0) FROM `counters` WHERE `name` GLOB 'hist:' || h || ':le:*')
  FROM (SELECT 'dispatch' AS h UNION ALL SELECT 'duration')
);
DELETE FROM `counters` WHERE `name` GLOB 'jobs_status:*' OR `name` = 'events:requeue' OR `name` GLOB 'hist:*';
ALTER TABLE `counters` DROP COLUMN `sum_ms`;
