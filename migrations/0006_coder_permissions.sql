-- The coding agent's permission requests (code_task): each tool call put to the job's requester,
-- its exact command or path and preview as shown, and how it ended (allowed, denied, expired).
CREATE TABLE `permission_requests` (
	`id` text PRIMARY KEY NOT NULL,
	`job_id` text NOT NULL,
	`attempt` integer NOT NULL,
	`step_id` text NOT NULL,
	`agent_id` text NOT NULL,
	`user_id` text NOT NULL,
	`chat_id` text,
	`tool` text NOT NULL,
	`kind` text NOT NULL,
	`target` text NOT NULL,
	`preview` text,
	`status` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`decided_at` integer,
	`decided_by` text
);
--> statement-breakpoint
CREATE INDEX `permission_requests_job_idx` ON `permission_requests` (`job_id`);--> statement-breakpoint
CREATE INDEX `permission_requests_user_status_idx` ON `permission_requests` (`user_id`,`status`);
