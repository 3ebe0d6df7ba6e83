// One vitest run, three projects: Worker tests inside workerd (the Cloudflare plugin, real D1
// migrations), agent tests in Node, and end-to-end tests against `wrangler dev` + real agents.
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { freePort } from "./test/helpers/node/ports.ts";

export default defineConfig(async () => {
  const migrations = await readD1Migrations("migrations");
  // The Bot API stand-in for worker tests listens here (started by the global setup).
  process.env.SKYNET_FAKE_TELEGRAM_PORT ??= String(await freePort());
  const telegramApiRoot = `http://127.0.0.1:${process.env.SKYNET_FAKE_TELEGRAM_PORT}`;
  return {
    test: {
      projects: [
        {
          plugins: [
            cloudflareTest({
              wrangler: { configPath: "./wrangler.toml" },
              miniflare: {
                bindings: {
                  TEST_MIGRATIONS: migrations,
                  API_TOKEN: "test-api-token",
                  TELEGRAM_BOT_TOKEN: "123456:TEST-TOKEN",
                  TELEGRAM_API_ROOT: telegramApiRoot,
                  TELEGRAM_ALLOWED_USER_IDS: "42,43,44,45,46,47,48,49,50",
                  TELEGRAM_ADMIN_USER_IDS: "43",
                  TELEGRAM_WEBHOOK_SECRET: "test-webhook-secret",
                  ANTHROPIC_API_KEY: "",
                  SKYNET_LOG_LEVEL: "error",
                },
              },
            }),
          ],
          test: {
            name: "worker",
            include: ["test/**/*.test.ts"],
            exclude: ["test/e2e/**", "test/node/**"],
            setupFiles: ["./test/helpers/apply-migrations.ts", "./test/helpers/refusals.ts"],
            globalSetup: ["./test/helpers/node/global-setup.ts"],
          },
        },
        {
          test: {
            name: "agent",
            environment: "node",
            include: ["agent/test/**/*.test.ts", "test/node/**/*.test.ts"],
            testTimeout: 30_000,
          },
        },
        {
          test: {
            name: "e2e",
            environment: "node",
            include: ["test/e2e/**/*.test.ts"],
            testTimeout: 120_000,
            hookTimeout: 120_000,
            fileParallelism: false,
          },
        },
      ],
    },
  };
});
