// Applies the real D1 migrations (read in vitest.config.ts) before each worker test file.
import { applyD1Migrations, env } from "cloudflare:test";

await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
