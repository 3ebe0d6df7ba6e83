// vitest globalSetup for the worker project: the Bot API stand-in, on the port vitest.config.ts
// chose and handed to the Worker as TELEGRAM_API_ROOT.
import { type FakeTelegram, startFakeTelegram } from "./fake-telegram.ts";

let server: FakeTelegram | undefined;

export async function setup(): Promise<void> {
  const port = Number(process.env.SKYNET_FAKE_TELEGRAM_PORT);
  server = await startFakeTelegram({ port, token: "123456:TEST-TOKEN" });
}

export async function teardown(): Promise<void> {
  await server?.close();
}
