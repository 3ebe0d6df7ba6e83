CREATE TABLE `alerts` (
	`key` text PRIMARY KEY NOT NULL,
	`active` integer NOT NULL,
	`message` text NOT NULL,
	`opened_at` integer NOT NULL,
	`last_sent_at` integer NOT NULL,
	`resolved_at` integer
);
--> statement-breakpoint
CREATE TABLE `counters` (
	`name` text PRIMARY KEY NOT NULL,
	`value` integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE `provider_checks` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`provider` text NOT NULL,
	`ok` integer NOT NULL,
	`latency_ms` integer NOT NULL,
	`agents_online` integer DEFAULT 0 NOT NULL,
	`detail` text,
	`at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `provider_checks_provider_at_idx` ON `provider_checks` (`provider`,`at`);--> statement-breakpoint
CREATE INDEX `job_events_to_status_idx` ON `job_events` (`to_status`,`job_id`,`seq`);