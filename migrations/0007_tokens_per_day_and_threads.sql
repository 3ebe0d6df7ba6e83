-- Model tokens per day for the web console's overview, kept incrementally: the JobDO writes whole
-- job snapshots (token totals so far), so these triggers add the difference between the old and the
-- new totals to that day's counters. A replayed snapshot adds 0; an older one is never applied
-- (the upsert's WHERE), so nothing is counted twice. The day is the UTC day the tokens were recorded.
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
-- The history so far, once, by the day each job was last updated.
INSERT INTO counters (name, value)
SELECT 'tokens_day:' || d || ':' || k, v FROM (
  SELECT updated_at / 86400000 AS d, 'input' AS k, SUM(tokens_input) AS v FROM jobs WHERE tokens_input > 0 GROUP BY d
  UNION ALL SELECT updated_at / 86400000, 'cached', SUM(tokens_cached) FROM jobs WHERE tokens_cached > 0 GROUP BY 1
  UNION ALL SELECT updated_at / 86400000, 'output', SUM(tokens_output) FROM jobs WHERE tokens_output > 0 GROUP BY 1
) WHERE true
ON CONFLICT(name) DO UPDATE SET value = value + excluded.value;
--> statement-breakpoint
-- Telegram follow-ups: a reply to the bot's message about a job is found by (chat, message).
CREATE INDEX `jobs_chat_message_idx` ON `jobs` (`chat_id`, `message_id`);
--> statement-breakpoint
-- A follow-up job's parent (the job whose message was replied to) and the message it replies to.
CREATE TABLE `job_threads` (
	`job_id` text PRIMARY KEY NOT NULL,
	`parent_job_id` text NOT NULL,
	`reply_to_message_id` integer,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `job_threads_parent_idx` ON `job_threads` (`parent_job_id`);
