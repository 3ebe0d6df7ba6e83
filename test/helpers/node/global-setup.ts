// vitest globalSetup for the worker project: the Bot API stand-in, on the port vitest.config.ts
// chose and handed to the Worker as TELEGRAM_API_ROOT. At the end, a refused call that no test
// arranged or reported (one to a chat outside every test's scope) fails the run.
import { describeRefusals, type FakeTelegram, startFakeTelegram } from "./fake-telegram.ts";

let server: FakeTelegram | undefined;

export async function setup(): Promise<void> {
  const port = Number(process.env.SKYNET_FAKE_TELEGRAM_PORT);
  server = await startFakeTelegram({ port, token: "123456:TEST-TOKEN" });
}

export async function teardown(): Promise<void> {
  const refused = server?.takeUnexpectedRefusals() ?? [];
  await server?.close();
  if (refused.length > 0) {
    throw new Error(
      `Telegram refused ${refused.length} Bot API call(s) no test accounted for:\n${describeRefusals(refused)}`,
    );
  }
}
