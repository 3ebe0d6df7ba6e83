-- The Telegram message that asked for a coding agent's permission: kept so that when the request
-- ends (decided in the API or CLI, expired on the agent or swept by the Sentinel) the message is
-- edited to say so and its buttons removed — no live buttons for a dead request.
ALTER TABLE `permission_requests` ADD `message_id` integer;
--> statement-breakpoint
CREATE INDEX `permission_requests_status_expires_idx` ON `permission_requests` (`status`,`expires_at`);
