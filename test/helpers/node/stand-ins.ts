// The Bot API and Messages API stand-ins for one test file: started before its first test, closed
// after its last, and checked after each test — a call Telegram would have refused, or a request
// the model stand-in refused or found unscripted, fails the test that made it.
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import { type FakeAnthropic, startFakeAnthropic } from "./fake-anthropic.ts";
import { describeRefusals, type FakeTelegram, startFakeTelegram } from "./fake-telegram.ts";

/**
 * A handle on what `current` returns once beforeAll has started it, so that a test file names the
 * stand-in once, at the top, while the server itself only exists during the file's run.
 */
function lateBound<T extends object>(what: string, current: () => T | undefined): T {
  return new Proxy(Object.create(null) as T, {
    get(_target, key) {
      const value = current();
      if (value === undefined) throw new Error(`${what} is used before beforeAll started it`);
      const field: unknown = Reflect.get(value, key);
      return typeof field === "function" ? field.bind(value) : field;
    },
  });
}

/** The Messages API stand-in alone (the planner and answer tests that need no Worker). */
export function useFakeAnthropic(): FakeAnthropic {
  let fake: FakeAnthropic | undefined;
  beforeAll(async () => {
    fake = await startFakeAnthropic();
  });
  afterAll(async () => {
    await fake?.close();
  });
  afterEach(() => {
    const problems = fake?.problems() ?? [];
    fake?.reset();
    expect(problems).toEqual([]);
  });
  return lateBound("the Messages API stand-in", () => fake);
}

/** Both stand-ins, for end-to-end tests that talk to the Worker through Telegram. */
export function useStandIns(): { tg: FakeTelegram; claude: FakeAnthropic } {
  let tg: FakeTelegram | undefined;
  let claude: FakeAnthropic | undefined;
  beforeAll(async () => {
    tg = await startFakeTelegram();
    claude = await startFakeAnthropic();
  });
  afterAll(async () => {
    await tg?.close();
    await claude?.close();
  });
  afterEach(() => {
    const refused = tg?.takeUnexpectedRefusals() ?? [];
    const problems = claude?.problems() ?? [];
    claude?.reset();
    expect(refused, `Telegram refused:\n${describeRefusals(refused)}`).toEqual([]);
    expect(problems).toEqual([]);
  });
  return {
    tg: lateBound("the Bot API stand-in", () => tg),
    claude: lateBound("the Messages API stand-in", () => claude),
  };
}
