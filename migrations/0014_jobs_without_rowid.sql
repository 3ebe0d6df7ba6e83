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
--> statement-breakpoint
-- The model call and token totals /metrics exposes were a SUM over every job at each scrape (a
-- scan growing with history): they are kept in the job metrics row instead, by triggers adding
-- what a snapshot changed (new minus old: a replayed snapshot adds 0, an older one is never
-- applied, as with the per-day token counters above). Only jobs that called the model pay a write.
CREATE TRIGGER `jobs_model_totals_insert` AFTER INSERT ON `jobs`
WHEN NEW.model_calls + NEW.tokens_input + NEW.tokens_cached + NEW.tokens_cache_write + NEW.tokens_output > 0
BEGIN
  UPDATE job_metrics SET data = json_set(data,
    '$."model:calls"', COALESCE(json_extract(data, '$."model:calls"'), 0) + NEW.model_calls,
    '$."model:tokens:input"', COALESCE(json_extract(data, '$."model:tokens:input"'), 0) + NEW.tokens_input,
    '$."model:tokens:cached"', COALESCE(json_extract(data, '$."model:tokens:cached"'), 0) + NEW.tokens_cached,
    '$."model:tokens:cache_write"', COALESCE(json_extract(data, '$."model:tokens:cache_write"'), 0) + NEW.tokens_cache_write,
    '$."model:tokens:output"', COALESCE(json_extract(data, '$."model:tokens:output"'), 0) + NEW.tokens_output)
  WHERE id = 1;
END;
--> statement-breakpoint
CREATE TRIGGER `jobs_model_totals_update`
AFTER UPDATE OF model_calls, tokens_input, tokens_cached, tokens_cache_write, tokens_output ON `jobs`
WHEN NEW.model_calls != OLD.model_calls OR NEW.tokens_input != OLD.tokens_input
  OR NEW.tokens_cached != OLD.tokens_cached OR NEW.tokens_cache_write != OLD.tokens_cache_write
  OR NEW.tokens_output != OLD.tokens_output
BEGIN
  UPDATE job_metrics SET data = json_set(data,
    '$."model:calls"', COALESCE(json_extract(data, '$."model:calls"'), 0) + NEW.model_calls - OLD.model_calls,
    '$."model:tokens:input"', COALESCE(json_extract(data, '$."model:tokens:input"'), 0) + NEW.tokens_input - OLD.tokens_input,
    '$."model:tokens:cached"', COALESCE(json_extract(data, '$."model:tokens:cached"'), 0) + NEW.tokens_cached - OLD.tokens_cached,
    '$."model:tokens:cache_write"', COALESCE(json_extract(data, '$."model:tokens:cache_write"'), 0) + NEW.tokens_cache_write - OLD.tokens_cache_write,
    '$."model:tokens:output"', COALESCE(json_extract(data, '$."model:tokens:output"'), 0) + NEW.tokens_output - OLD.tokens_output)
  WHERE id = 1;
END;
--> statement-breakpoint
-- The totals so far, once.
UPDATE `job_metrics` SET `data` = json_set(`data`,
  '$."model:calls"', (SELECT COALESCE(SUM(`model_calls`), 0) FROM `jobs`),
  '$."model:tokens:input"', (SELECT COALESCE(SUM(`tokens_input`), 0) FROM `jobs`),
  '$."model:tokens:cached"', (SELECT COALESCE(SUM(`tokens_cached`), 0) FROM `jobs`),
  '$."model:tokens:cache_write"', (SELECT COALESCE(SUM(`tokens_cache_write`), 0) FROM `jobs`),
  '$."model:tokens:output"', (SELECT COALESCE(SUM(`tokens_output`), 0) FROM `jobs`))
WHERE `id` = 1;
