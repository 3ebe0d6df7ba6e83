-- Fewer D1 rows written per job (issue 18 item 5).
--
-- A histogram measurement wrote two counter rows: its bucket and the histogram's sum. The sum now
-- rides on the bucket row (sum_ms): the histogram's sum is the total of its bucket rows' sum_ms,
-- so a measurement writes one row. Each existing sum moves onto the histogram's +Inf bucket row
-- (created with count 0 if absent): counts and sums are unchanged.
ALTER TABLE `counters` ADD COLUMN `sum_ms` integer NOT NULL DEFAULT 0;
INSERT INTO `counters` (`name`, `value`, `sum_ms`)
SELECT substr(`name`, 1, length(`name`) - length('sum_ms')) || 'le:+Inf', 0, `value`
FROM `counters` WHERE `name` IN ('hist:dispatch:sum_ms', 'hist:duration:sum_ms')
ON CONFLICT (`name`) DO UPDATE SET `sum_ms` = `sum_ms` + excluded.`sum_ms`;
DELETE FROM `counters` WHERE `name` IN ('hist:dispatch:sum_ms', 'hist:duration:sum_ms');

-- A job from the API (no chat) wrote an entry into the (chat_id, message_id) index, which only
-- the bot's lookup of a replied-to message reads (chat_id = ?, so a partial index serves it).
DROP INDEX IF EXISTS `jobs_chat_message_idx`;
CREATE INDEX `jobs_chat_message_idx` ON `jobs` (`chat_id`, `message_id`) WHERE `chat_id` IS NOT NULL;
