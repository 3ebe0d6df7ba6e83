// The chat side under load, on `wrangler dev` against the strict Bot API stand-in: 400 updates
// from 8 allowed users at concurrency 8 (each user's updates one after another, as one chat's are,
// the users side by side), a mix of /task, /jobs, /status, /help and /agents. Prints how long the
// webhook took to answer (p50/p99), how long until every reply was sent, and whether each chat got
// its replies in the order it sent the commands.
// `node bench/chat-load.ts [--updates 400] [--users 8]`
import { readdirSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { startFakeTelegram } from "../test/helpers/node/fake-telegram.ts";
import { waitFor } from "../test/helpers/node/wait.ts";
import { startWorker } from "../test/helpers/node/wrangler-dev.ts";

const { values } = parseArgs({
  options: { updates: { type: "string", default: "400" }, users: { type: "string", default: "8" } },
});
const UPDATES = Number(values.updates);
const USERS = Number(values.users);
const SECRET = "chat-load-webhook-secret";

// Each command and the reply it gets first; a reply matching none (a job's later message) is not
// one of the bot's answers and is left out of the order check.
const KINDS: { command: (n: number) => string; reply: RegExp }[] = [
  { command: (n) => `/task check git status ${n}`, reply: /^🧠 Planning…/ },
  { command: () => "/jobs", reply: /^(<b>Your jobs<\/b>|No jobs yet)/ },
  { command: () => "/status job_0000000000chatload", reply: /^I don't know that job\.$/ },
  { command: () => "/help", reply: /^<b>SKYNET<\/b>/ },
  { command: () => "/agents", reply: /^(No agent is connected|<b>Agents online<\/b>)/ },
];

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;

const tg = await startFakeTelegram();
const users = Array.from({ length: USERS }, (_, i) => ({ id: 7001 + i, is_bot: false, first_name: `U${i}` }));
const worker = await startWorker({
  vars: {
    TELEGRAM_BOT_TOKEN: tg.token,
    TELEGRAM_WEBHOOK_SECRET: SECRET,
    TELEGRAM_API_ROOT: tg.url,
    TELEGRAM_ALLOWED_USER_IDS: users.map((u) => u.id).join(","),
    SKYNET_LOG_LEVEL: "error",
  },
});

// CPU of this run's workerd (user + system, ms): wall times on a shared machine swing with other
// load, CPU per update does not. Found as the workerd whose ancestors include our wrangler.
function procStat(pid: string): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, "utf8");
    return raw.slice(raw.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}
function ours(pid: string): boolean {
  for (let p = pid, depth = 0; p !== "0" && p !== "1" && depth < 6; depth++) {
    const cmd = (() => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8");
      } catch {
        return "";
      }
    })();
    if (cmd.includes(worker.persistDir)) return true;
    p = procStat(p)?.[1] ?? "0";
  }
  return false;
}
const workerd = readdirSync("/proc").filter(
  (pid) => /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "workerd" && ours(pid),
);
const cpuMs = () =>
  workerd.reduce((sum, pid) => {
    const f = procStat(pid);
    return sum + ((Number(f?.[11]) || 0) + (Number(f?.[12]) || 0)) * 10;
  }, 0);

let updateId = 1;
let messageId = 1;
async function post(user: { id: number; is_bot: boolean; first_name: string }, text: string): Promise<number> {
  const command = /^\/\w+/.exec(text)?.[0] ?? "";
  const body = JSON.stringify({
    update_id: updateId++,
    message: {
      message_id: messageId++,
      from: user,
      chat: { id: user.id, type: "private", first_name: user.first_name },
      date: Math.floor(Date.now() / 1000),
      text,
      entities: [{ type: "bot_command", offset: 0, length: command.length }],
    },
  });
  const started = performance.now();
  const res = await fetch(`${worker.url}/telegram/webhook`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET },
    body,
  });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`the webhook answered ${res.status}`);
  return performance.now() - started;
}

try {
  // Warm up (module load, first D1 and Durable Object requests), then start from a clean record.
  for (const user of users) await post(user, "/help");
  await waitFor(() => tg.calls.length >= users.length, { what: "the warm-up replies" });
  const warm = tg.calls.length;

  const plan = new Map(users.map((u) => [u.id, [] as number[]]));
  for (let i = 0; i < UPDATES; i++) plan.get(users[i % USERS]?.id ?? 0)?.push(i % KINDS.length);
  const latencies: number[] = [];
  const timeline: [number, number][] = [];
  const started = performance.now();
  const cpuBefore = cpuMs();
  await Promise.all(
    users.map(async (user) => {
      for (const [n, kind] of (plan.get(user.id) ?? []).entries()) {
        const at = performance.now() - started;
        const ms = await post(user, KINDS[kind]?.command(n) ?? "/help");
        latencies.push(ms);
        timeline.push([Math.round(at), Math.round(ms)]);
      }
    }),
  );
  const posted = performance.now() - started;
  const answered = (id: number) =>
    tg.calls
      .slice(warm)
      .filter((c) => c.method === "sendMessage" && String(c.params.chat_id) === String(id))
      .map((c) => KINDS.findIndex((k) => k.reply.test(String(c.params.text ?? ""))))
      .filter((k) => k >= 0);
  await waitFor(() => users.every((u) => answered(u.id).length >= (plan.get(u.id)?.length ?? 0)), {
    what: "every reply",
    timeoutMs: 120_000,
    intervalMs: 20,
  });
  const replied = performance.now() - started;
  const cpu = cpuMs() - cpuBefore;
  const inOrder = users.filter((u) => JSON.stringify(answered(u.id)) === JSON.stringify(plan.get(u.id)));
  const refused = tg.calls.slice(warm).filter((c) => c.ok === false);
  latencies.sort((a, b) => a - b);

  // Alone: one update at a time, the next sent once the reply to the one before has been made.
  const user = users[0] ?? { id: 0, is_bot: false, first_name: "" };
  const alone: number[] = [];
  for (let i = 0; i < 40; i++) {
    const before = tg.calls.length;
    alone.push(await post(user, "/help"));
    await waitFor(() => tg.calls.length > before, { what: "the reply", intervalMs: 5 });
  }
  alone.sort((a, b) => a - b);

  // The webhook's own cost: updates from a bot, which the bot ignores at once (no D1, no Bot API).
  const ignored = { id: 7999, is_bot: true, first_name: "B" };
  const cpuIgnored = cpuMs();
  const bare: number[] = [];
  for (let i = 0; i < 200; i++) bare.push(await post(ignored, "/help"));
  const bareCpu = (cpuMs() - cpuIgnored) / 200;
  bare.sort((a, b) => a - b);
  const result = {
    updates: UPDATES,
    users: USERS,
    concurrency: USERS,
    webhookMs: {
      p50: Number(percentile(latencies, 50).toFixed(1)),
      p99: Number(percentile(latencies, 99).toFixed(1)),
      max: Number((latencies.at(-1) ?? Number.NaN).toFixed(1)),
    },
    aloneWebhookMs: {
      p50: Number(percentile(alone, 50).toFixed(1)),
      p99: Number(percentile(alone, 99).toFixed(1)),
    },
    ignoredUpdate: {
      webhookP50Ms: Number(percentile(bare, 50).toFixed(1)),
      workerdCpuMs: workerd.length > 0 ? Number(bareCpu.toFixed(2)) : "unknown",
    },
    allPostedMs: Math.round(posted),
    allRepliedMs: Math.round(replied),
    workerdCpuMsPerUpdate: workerd.length > 0 ? Number((cpu / UPDATES).toFixed(1)) : "unknown",
    chatsInOrder: `${inOrder.length}/${USERS}`,
    refusedBotApiCalls: refused.length,
    // The slowest answers and when (ms into the run) their POST started.
    slowest: timeline
      .sort((a, b) => b[1] - a[1])
      .slice(0, 6)
      .map(([at, ms]) => `${ms} ms at ${at} ms`),
  };
  console.log(JSON.stringify(result, null, 2));
  if (inOrder.length !== USERS || refused.length > 0) process.exitCode = 1;
} finally {
  await worker.stop();
  await tg.close();
}
