// `node bench/profile.ts [--jobs 20] [--chat 0]`: a CPU profile of the Worker's isolate (all its
// Durable Objects) over READ_ONLY "check git status" jobs, through wrangler dev's DevTools
// inspector; prints the self time by source file and the top functions. The jobs run one at a
// time, so the profile is of the hot path, not of contention. With --chat N, N Telegram updates
// (the chat bench's command mix, each waited for until its chat's inbox is idle) instead of jobs.
// With --log-mb N, one step printing N MB of varied log lines (the bench's log text) instead:
// the profile is then of log streaming, per MB.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startAgent } from "../test/helpers/node/agent-process.ts";
import { ApiClient } from "../test/helpers/node/api-client.ts";
import { startFakeTelegram } from "../test/helpers/node/fake-telegram.ts";
import { makeGitRepo } from "../test/helpers/node/git-repo.ts";
import { startWorker } from "../test/helpers/node/wrangler-dev.ts";
import { CHAT_COMMANDS } from "./chat-load.ts";
import { benchJobId, reachedAt } from "./lib/jobs.ts";
import { logText } from "./lib/log-text.ts";
import { executeSpec } from "./parts.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; scriptId: string };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const { values } = parseArgs({
  options: {
    jobs: { type: "string", default: "20" },
    chat: { type: "string", default: "0" },
    "log-mb": { type: "string", default: "0" },
  },
});
const CHAT = Number(values.chat);
const LOG_MB = Number(values["log-mb"]);
/** What the profile is divided by: jobs, chat updates with --chat, or MB with --log-mb. */
const JOBS = CHAT > 0 ? CHAT : LOG_MB > 0 ? LOG_MB : Number(values.jobs);
const WEBHOOK_SECRET = "profile-webhook-secret";
const RESULTS = join(import.meta.dirname, "results");

async function inspector(port: number) {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json`)).json()) as { webSocketDebuggerUrl: string }[];
  const url = targets[0]?.webSocketDebuggerUrl;
  if (!url) throw new Error("no inspector target");
  // wrangler's inspector proxy wants an Origin it allows; Node's WebSocket (undici) takes headers
  // in its init object.
  const init = { headers: { Origin: "http://localhost" } } as unknown as string[];
  const ws = new WebSocket(url, init);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  let next = 1;
  const waiting = new Map<number, (v: unknown) => void>();
  ws.onmessage = (ev) => {
    const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown };
    if (msg.id !== undefined) waiting.get(msg.id)?.(msg.result);
  };
  return {
    send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
      const id = next++;
      ws.send(JSON.stringify({ id, method, params }));
      return new Promise((resolve) => waiting.set(id, resolve as (v: unknown) => void));
    },
    close: () => ws.close(),
  };
}

/**
 * The module a bundle line belongs to: esbuild's dev bundle starts each module with a comment
 * naming its path (`// src/jobs/job-store.ts`), so the nearest one above the line names it.
 */
function moduleIndex(source: string): (line: number) => string {
  const starts: { line: number; name: string }[] = [];
  source.split("\n").forEach((text, i) => {
    const m = /^\/\/ ((?:src|protocol|node_modules|\.\.\/)[^\s]*\.[cm]?[jt]s)$/.exec(text);
    if (m?.[1]) starts.push({ line: i, name: m[1].replace(/^.*node_modules\//, "node_modules/") });
  });
  return (line) => {
    let lo = 0;
    let hi = starts.length - 1;
    let found = "(bundle prelude)";
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = starts[mid];
      if (!s) break;
      if (s.line <= line) {
        found = s.name;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  };
}

function summarise(p: Profile, moduleOf: Map<string, (line: number) => string>): string[] {
  const lines: string[] = [];
  // Self time per node from the samples and their time deltas.
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => {
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  });
  const byFile = new Map<string, number>();
  const byFn = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const n of p.nodes) {
    const us = self.get(n.id) ?? 0;
    const name = n.callFrame.functionName;
    if (name === "(idle)" || name === "(program)") {
      idle += us;
      continue;
    }
    total += us;
    const mapped = moduleOf.get(n.callFrame.scriptId)?.(n.callFrame.lineNumber);
    const file =
      mapped ?? (n.callFrame.url.replace(/^.*?\/(src|node_modules|protocol)\//, "$1/") || `(${name || "native"})`);
    byFile.set(file, (byFile.get(file) ?? 0) + us);
    const fn = `${name || "(anonymous)"} ${file}:${n.callFrame.lineNumber + 1}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + us);
  }
  const ms = (us: number) => (us / 1000).toFixed(1);
  const unit = CHAT > 0 ? "update" : LOG_MB > 0 ? "MB" : "job";
  lines.push(
    `busy ${ms(total)} ms over ${JOBS} ${unit}s = ${ms(total / JOBS)} ms per ${unit} (idle/program ${ms(idle)} ms)`,
  );
  lines.push("self time by file:");
  for (const [f, us] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 30))
    lines.push(`  ${ms(us).padStart(8)} ms  ${((100 * us) / total).toFixed(1).padStart(5)} %  ${f}`);
  lines.push("top functions:");
  for (const [f, us] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, 30))
    lines.push(`  ${ms(us).padStart(8)} ms  ${f}`);
  return lines;
}

async function main(): Promise<void> {
  const tg = await startFakeTelegram();
  const worker = await startWorker({
    vars: {
      SKYNET_LOG_LEVEL: "warn",
      TASK_RATE_LIMIT_PER_MINUTE: "1000",
      TELEGRAM_BOT_TOKEN: tg.token,
      TELEGRAM_API_ROOT: tg.url,
      TELEGRAM_WEBHOOK_SECRET: WEBHOOK_SECRET,
      TELEGRAM_ALLOWED_USER_IDS: "101",
      TELEGRAM_ADMIN_USER_IDS: "101",
    },
  });
  let updateId = 1;
  /** One update, then a wait until the bot has answered it (its reply recorded by the stand-in). */
  const chat = async (text: string) => {
    const before = tg.calls.length;
    const res = await fetch(`${worker.url}/telegram/webhook`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET },
      body: JSON.stringify({
        update_id: updateId,
        message: {
          message_id: updateId++,
          date: Math.floor(Date.now() / 1000),
          chat: { id: 101, type: "private", first_name: "p" },
          from: { id: 101, is_bot: false, first_name: "p" },
          text,
          entities: [{ type: "bot_command", offset: 0, length: (text.split(" ")[0] ?? text).length }],
        },
      }),
    });
    if (res.status !== 200) throw new Error(`webhook answered ${res.status}`);
    for (let i = 0; i < 500 && tg.calls.length === before; i++) await new Promise((r) => setTimeout(r, 10));
  };
  const client = new ApiClient(worker.url, worker.apiToken);
  const repo = await makeGitRepo({ "README.md": "# profile\n" });
  const { token } = await client.pair("profile");
  const agent = await startAgent({
    url: worker.url,
    token,
    workspace: repo.dir,
    projectId: "bench",
    maxConcurrency: 4,
    name: "profile",
    allowShell: LOG_MB > 0,
  });
  if (LOG_MB > 0) await writeFile(join(repo.dir, "bench-log.txt"), logText(LOG_MB * 1024 * 1024));
  try {
    // Warm up (first requests compile the bundle, create tables).
    for (let i = 0; i < 3; i++) await client.waitFinished(await client.submit("check git status", "bench"));
    for (const cmd of CHAT > 0 ? CHAT_COMMANDS : []) await chat(cmd);
    const cdp = await inspector(worker.inspectorPort());
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.setSamplingInterval", { interval: 100 });
    await cdp.send("Profiler.start");
    // One long-poll per job (answered at the commit that ends it), not a client poll.
    for (let i = 0; i < CHAT; i++) await chat(CHAT_COMMANDS[i % CHAT_COMMANDS.length] ?? "/help");
    if (LOG_MB > 0) {
      const id = benchJobId();
      const t0 = Date.now();
      await client.call("/execute", { json: executeSpec(id, "bench", ["cat", "bench-log.txt"]) });
      const res = await client.call<{ status: string }>(`/api/jobs/${id}/wait?timeoutS=300`);
      if (res.body.status !== "SUCCEEDED") throw new Error(`job ${id} ended ${res.body.status}`);
      const told = Date.now();
      const ended = await reachedAt(client, id, "SUCCEEDED");
      console.log(
        `${LOG_MB} MB: SUCCEEDED ${ended === null ? "unknown" : `${ended - t0} ms`} after the submit (ledger), the wait answered after ${told - t0} ms`,
      );
    }
    for (let i = 0; i < (CHAT > 0 || LOG_MB > 0 ? 0 : JOBS); i++) {
      const id = await client.submit("check git status", "bench");
      const res = await client.call<{ status: string }>(`/api/jobs/${id}/wait?timeoutS=30`);
      if (res.body.status !== "SUCCEEDED") throw new Error(`job ${id} ended ${res.body.status}`);
    }
    const { profile } = await cdp.send<{ profile: Profile }>("Profiler.stop");
    const moduleOf = new Map<string, (line: number) => string>();
    await cdp.send("Debugger.enable");
    for (const id of new Set(profile.nodes.map((n) => n.callFrame.scriptId))) {
      if (!id || id === "0") continue;
      const src = await cdp.send<{ scriptSource?: string }>("Debugger.getScriptSource", { scriptId: id });
      if (src?.scriptSource) moduleOf.set(id, moduleIndex(src.scriptSource));
    }
    cdp.close();
    const lines = summarise(profile, moduleOf);
    console.log(lines.join("\n"));
    // Kept beside the bench results, so a profile before and after a change can be compared.
    const out = join(RESULTS, `profile-${new Date().toISOString().replaceAll(":", "-")}.txt`);
    await mkdir(RESULTS, { recursive: true });
    await writeFile(out, `${lines.join("\n")}\n`);
    console.log(`written to ${out}`);
  } finally {
    await agent.stop();
    await worker.stop();
    await tg.close();
    await repo.cleanup();
  }
}

await main();
