// The chat side under load (issue #17): real Telegram update JSON posted to the webhook by several
// allowed users at once, against the strict Bot API stand-in. Reports the webhook's answer time,
// errors, Bot API calls the stand-in refused, and whether each chat's replies came in the order
// its commands were sent.
import type { FakeTelegram, RecordedCall } from "../test/helpers/node/fake-telegram.ts";
import { p50p99, say } from "./lib/stats.ts";

export const CHAT_COMMANDS = ["/task check git status", "/jobs", "/status", "/help", "/agents"] as const;
type Command = (typeof CHAT_COMMANDS)[number];

export interface ChatLoadOptions {
  webhookUrl: string;
  secret: string;
  tg: FakeTelegram;
  /** Allowed user ids: each user sends its share in order, one at a time (its chat is private). */
  users: number[];
  /** A further allowed user whose chat calibrates what each command's reply looks like. */
  calibrationUser: number;
  updates: number;
}

let updateId = 1;
let messageId = 1;

async function post(o: ChatLoadOptions, user: number, text: string): Promise<{ ms: number; status: number }> {
  const command = text.split(" ")[0] ?? text;
  const update = {
    update_id: updateId++,
    message: {
      message_id: messageId++,
      date: Math.floor(Date.now() / 1000),
      chat: { id: user, type: "private", first_name: `user${user}` },
      from: { id: user, is_bot: false, first_name: `user${user}` },
      text,
      entities: [{ type: "bot_command", offset: 0, length: command.length }],
    },
  };
  const t = performance.now();
  const res = await fetch(o.webhookUrl, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": o.secret },
    body: JSON.stringify(update),
  });
  await res.arrayBuffer();
  return { ms: performance.now() - t, status: res.status };
}

const sentTo = (c: RecordedCall, user: number) =>
  c.method === "sendMessage" && String(c.params.chat_id) === String(user);
/** The first two words of a reply: enough to tell the commands' replies apart, not their data. */
const signature = (c: RecordedCall) =>
  String(c.params.text ?? "")
    .replace(/<[^>]+>/g, "")
    .trim()
    .split(/\s+/)
    .slice(0, 2)
    .join(" ");

/**
 * Per chat, the replies recognised by a command's reply signature must name the commands in the
 * order sent; replies not recognised (a job's own notices, "no jobs yet" where "Your jobs" was
 * calibrated) are skipped, and a command may have no recognised reply. "unknown" when two
 * commands' replies share a signature.
 */
export function repliesInOrder(
  sent: Map<number, readonly string[]>,
  calls: RecordedCall[],
  sigs: Map<string, string>,
): { inOrder: boolean | "unknown"; recognised: number } {
  const bySig = new Map([...sigs].map(([cmd, s]) => [s, cmd]));
  if (bySig.size !== sigs.size) return { inOrder: "unknown", recognised: 0 };
  let recognised = 0;
  const inOrder = [...sent].every(([user, cmds]) => {
    let at = 0;
    for (const c of calls.filter((call) => sentTo(call, user))) {
      const cmd = bySig.get(signature(c));
      if (!cmd) continue;
      recognised++;
      while (at < cmds.length && cmds[at] !== cmd) at++;
      if (at === cmds.length) return false;
      at++;
    }
    return true;
  });
  return { inOrder, recognised };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function firstReply(o: ChatLoadOptions, before: number): Promise<RecordedCall | undefined> {
  for (let waited = 0; waited < 10_000; waited += 20) {
    const reply = o.tg.calls.slice(before).find((c) => sentTo(c, o.calibrationUser));
    if (reply) return reply;
    await pause(20);
  }
  return undefined;
}

/** Waits until no Bot API call has been recorded for 500 ms (at most 10 s). */
async function quiet(o: ChatLoadOptions): Promise<void> {
  let seen = o.tg.calls.length;
  for (let still = 0, waited = 0; still < 500 && waited < 10_000; waited += 50) {
    await pause(50);
    still = o.tg.calls.length === seen ? still + 50 : 0;
    seen = o.tg.calls.length;
  }
}

export async function runChatLoad(o: ChatLoadOptions) {
  // Calibration, one update at a time: each command's reply signature, and the answer time alone.
  const sigs = new Map<Command, string>();
  const alone: number[] = [];
  for (const cmd of CHAT_COMMANDS) {
    const before = o.tg.calls.length;
    alone.push((await post(o, o.calibrationUser, cmd)).ms);
    // The webhook answers once the update is stored; the reply follows. Wait for it, then for the
    // chat to go quiet (a /task's later job messages), so no reply is taken for the next command's.
    const reply = await firstReply(o, before);
    if (reply) sigs.set(cmd, signature(reply));
    await quiet(o);
  }
  if (sigs.size !== CHAT_COMMANDS.length)
    say("chat: a command had no reply while calibrating: its replies are not checked for order");
  o.tg.takeUnexpectedRefusals();

  const firstCall = o.tg.calls.length;
  const sent = new Map<number, Command[]>();
  const times: number[] = [];
  let errors = 0;
  const perUser = Math.ceil(o.updates / o.users.length);
  const t0 = performance.now();
  await Promise.all(
    o.users.map(async (user, u) => {
      const mine: Command[] = [];
      sent.set(user, mine);
      for (let i = 0; i < perUser && u * perUser + i < o.updates; i++) {
        const cmd = CHAT_COMMANDS[(i * 3 + u) % CHAT_COMMANDS.length] as Command;
        mine.push(cmd);
        const r = await post(o, user, cmd);
        times.push(r.ms);
        if (r.status !== 200) errors++;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  // Replies still on their way (a webhook that answers before replying) get a moment to land.
  await new Promise((r) => setTimeout(r, 2000));
  const calls = o.tg.calls.slice(firstCall);
  const refused = o.tg.takeUnexpectedRefusals();

  const order = repliesInOrder(sent, calls, sigs);
  return {
    updates: times.length,
    users: o.users.length,
    concurrency: o.users.length,
    seconds,
    alone: p50p99(alone),
    webhook: p50p99(times),
    errors,
    botApiCalls: calls.length,
    refusedBotApiCalls: refused.length,
    refusedSample: refused.slice(0, 3).map((c) => `${c.method}: ${c.error}`),
    repliesInOrder: order.inOrder,
    repliesRecognised: order.recognised,
    signatures: Object.fromEntries(sigs),
  };
}
