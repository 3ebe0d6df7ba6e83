-- Fewer D1 rows per job (issue 18 item 5).
--
-- The job metrics row keeps only what grows with history (jobs by final status, the latency
-- histograms, re-dispatches): jobs in a status they leave again are counted when /metrics is read,
-- from the jobs status index (metric-counters.ts, activeStatusCountsSql), so a transition between
-- two such statuses writes no metrics row. Their old running counts go.
UPDATE `job_metrics` SET `data` = json_remove(`data`, '$."jobs_status:CREATED"', '$."jobs_status:PLANNED"',
  '$."jobs_status:QUEUED"', '$."jobs_status:RUNNING"') WHERE `id` = 1;
--> statement-breakpoint
-- jobs as a WITHOUT ROWID table keyed by id: a rowid table's insert wrote its row and an entry in
-- the id's own unique index (each billed); keyed by id it is one b-tree entry. Every row, column,
-- index (the partial chat index too) and trigger is kept; nothing read the rowid.
CREATE TABLE `jobs_new` (
	`id` text PRIMARY KEY NOT NULL,
	`project_id` text NOT NULL,
	`user_id` text NOT NULL,
	`chat_id` text,
	`message_id` integer,
	`intent` text NOT NULL,
	`status` text NOT NULL,
	`risk` text,
	`attempt` integer DEFAULT 0 NOT NULL,
	`plan_json` text,
	`spec_json` text,
	`result_json` text,
	`error` text,
	`agent_id` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`answer` text,
	`model_calls` integer DEFAULT 0 NOT NULL,
	`tokens_input` integer DEFAULT 0 NOT NULL,
	`tokens_cached` integer DEFAULT 0 NOT NULL,
	`tokens_cache_write` integer DEFAULT 0 NOT NULL,
	`tokens_output` integer DEFAULT 0 NOT NULL,
	`events` text NOT NULL DEFAULT '[]'
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `jobs_new` (`id`, `project_id`, `user_id`, `chat_id`, `message_id`, `intent`, `status`, `risk`,
  `attempt`, `plan_json`, `spec_json`, `result_json`, `error`, `agent_id`, `created_at`, `updated_at`, `answer`,
  `model_calls`, `tokens_input`, `tokens_cached`, `tokens_cache_write`, `tokens_output`, `events`)
SELECT `id`, `project_id`, `user_id`, `chat_id`, `message_id`, `intent`, `status`, `risk`,
  `attempt`, `plan_json`, `spec_json`, `result_json`, `error`, `agent_id`, `created_at`, `updated_at`, `answer`,
  `model_calls`, `tokens_input`, `tokens_cached`, `tokens_cache_write`, `tokens_output`, `events` FROM `jobs`;
--> statement-breakpoint
DROP TABLE `jobs`;
--> statement-breakpoint
ALTER TABLE `jobs_new` RENAME TO `jobs`;
--> statement-breakpoint
CREATE INDEX `jobs_status_created_idx` ON `jobs` (`status`,`created_at`,`id`);
--> statement-breakpoint
CREATE INDEX `jobs_user_created_idx` ON `jobs` (`user_id`,`created_at`);
--> statement-breakpoint
CREATE INDEX `jobs_created_idx` ON `jobs` (`created_at`,`id`);
--> statement-breakpoint
CREATE INDEX `jobs_chat_message_idx` ON `jobs` (`chat_id`, `message_id`) WHERE `chat_id` IS NOT NULL;
--> statement-breakpoint
-- The token-per-day triggers of migration 0007 went with the old table: the same again.
CREATE TRIGGER `jobs_tokens_insert` AFTER INSERT ON `jobs`
WHEN NEW.tokens_input + NEW.tokens_cached + NEW.tokens_output > 0
BEGIN
  INSERT INTO counters (name, value) VALUES
    ('tokens_day:' || (NEW.updated_at / 86400000) || ':input', NEW.tokens_input),
    ('tokens_day:' || (NEW.updated_at / 86400000) || ':cached', NEW.tokens_cached),
    ('tokens_day:' || (NEW.updated_at / 86400000) || ':output', NEW.tokens_output)
  ON CONFLICT(name) DO UPDATE SET value = value + excluded.value;
END;
--> statement-breakpoint
CREATE TRIGGER `jobs_tokens_update` AFTER UPDATE OF tokens_input, tokens_cached, tokens_output ON `jobs`
WHEN NEW.tokens_input != OLD.tokens_input OR NEW.tokens_cached != OLD.tokens_cached
  OR NEW.tokens_output != OLD.tokens_output
BEGIN
  INSERT INTO counters (name, value) VALUES
    ('tokens_day:' || (NEW.updated_at / 86400000) || ':input', NEW.tokens_input - OLD.tokens_input),
    ('tokens_day:' || (NEW.updated_at / 86400000) || ':cached', NEW.tokens_cached - OLD.tokens_cached),
    ('tokens_day:' || (NEW.updated_at / 86400000) || ':output', NEW.tokens_output - OLD.tokens_output)
  ON CONFLICT(name) DO UPDATE SET value = value + excluded.value;
END;
