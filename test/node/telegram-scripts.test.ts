// The Telegram helper scripts against the Bot API stand-in: the long-poll bridge forwards
// updates to a webhook with the secret header; the setup script sets the webhook and commands.
import { execFile, spawn } from "node:child_process";
import { createServer } from "node:http";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeTelegram, startFakeTelegram } from "../helpers/node/fake-telegram.ts";
import { waitFor } from "../helpers/node/wait.ts";

const ROOT = resolve(import.meta.dirname, "../..");
let tg: FakeTelegram;

beforeAll(async () => {
  tg = await startFakeTelegram();
});
afterAll(async () => {
  await tg.close();
});

/** The scripts' environment: the stand-in's bot token and address, and the webhook secret. */
const scriptEnv = () => ({
  ...process.env,
  TELEGRAM_BOT_TOKEN: tg.token,
  TELEGRAM_WEBHOOK_SECRET: "s3cret",
  TELEGRAM_API_ROOT: tg.url,
});

describe("telegram scripts", () => {
  it("the poll bridge forwards each update once, with the secret header", async () => {
    const received: { secret: string | undefined; body: { update_id: number } }[] = [];
    const hook = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        received.push({
          secret: req.headers["x-telegram-bot-api-secret-token"] as string | undefined,
          body: JSON.parse(Buffer.concat(chunks).toString()) as { update_id: number },
        });
        res.end("ok");
      });
    });
    await new Promise<void>((r) => hook.listen(0, "127.0.0.1", r));
    const port = (hook.address() as { port: number }).port;
    const bridge = spawn(
      process.execPath,
      [resolve(ROOT, "scripts/telegram-poll.ts"), "--webhook", `http://127.0.0.1:${port}/telegram/webhook`],
      {
        cwd: ROOT,
        env: scriptEnv(),
        stdio: "pipe",
      },
    );
    try {
      for (const text of ["/help", "/jobs"]) {
        await fetch(`${tg.url}/__updates`, {
          method: "POST",
          body: JSON.stringify({ message: { message_id: 1, date: 0, chat: { id: 42, type: "private" }, text } }),
        });
      }
      await waitFor(() => received.length >= 2, { what: "two forwarded updates", timeoutMs: 15_000 });
      await new Promise((r) => setTimeout(r, 300));
      expect(received.map((r) => r.body.update_id)).toEqual([1, 2]);
      expect(received.every((r) => r.secret === "s3cret")).toBe(true);
      expect(tg.calls.some((c) => c.method === "deleteWebhook")).toBe(true);
    } finally {
      bridge.kill("SIGKILL");
      hook.close();
    }
  });

  it("the setup script registers the webhook with its secret and the command list", async () => {
    await promisify(execFile)(
      process.execPath,
      [resolve(ROOT, "scripts/telegram-setup.ts"), "https://skynet.example.dev"],
      {
        cwd: ROOT,
        env: scriptEnv(),
      },
    );
    const hook = tg.calls.find((c) => c.method === "setWebhook");
    expect(hook?.params).toMatchObject({
      url: "https://skynet.example.dev/telegram/webhook",
      secret_token: "s3cret",
      drop_pending_updates: true,
    });
    const commands = tg.calls.find((c) => c.method === "setMyCommands")?.params.commands as { command: string }[];
    expect(commands.map((c) => c.command)).toContain("task");
    expect(commands.map((c) => c.command)).toContain("pair");
  });

  it("the setup script says what Telegram refused and exits 1 (a wrong bot token)", async () => {
    const run = promisify(execFile)(process.execPath, [resolve(ROOT, "scripts/telegram-setup.ts"), "https://x.dev"], {
      cwd: ROOT,
      env: { ...process.env, TELEGRAM_BOT_TOKEN: "999:WRONG", TELEGRAM_WEBHOOK_SECRET: "s", TELEGRAM_API_ROOT: tg.url },
    });
    const failed = await run.then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toContain("setWebhook failed: Unauthorized");
  });
});
