-- Fewer D1 rows written per job (issue 18 item 5): D1 bills each b-tree an insert touches. A job
-- event was a rowid row (plus an AUTOINCREMENT sqlite_sequence update) and an entry in the unique
-- (job_id, seq) index; as a WITHOUT ROWID table keyed by (job_id, seq) it is one b-tree entry.
-- Nothing read the surrogate id except retention's oldest-first order, which the key gives too
-- (job ids begin with their creation time). Every event is kept.
CREATE TABLE `job_events_new` (
	`job_id` text NOT NULL,
	`seq` integer NOT NULL,
	`from_status` text,
	`to_status` text NOT NULL,
	`event` text NOT NULL,
	`detail` text,
	`at` integer NOT NULL,
	PRIMARY KEY (`job_id`, `seq`)
) WITHOUT ROWID;
INSERT INTO `job_events_new` (`job_id`, `seq`, `from_status`, `to_status`, `event`, `detail`, `at`)
SELECT `job_id`, `seq`, `from_status`, `to_status`, `event`, `detail`, `at` FROM `job_events`;
DROP TABLE `job_events`;
ALTER TABLE `job_events_new` RENAME TO `job_events`;
