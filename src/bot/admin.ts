// /start, /help, /agents, /pair.
import { Composer, type Context } from "grammy";
import { registryStub } from "../agents/registry-stub.ts";
import { issuePairingCode } from "../agents/tokens.ts";
import { esc, HELP } from "./format.ts";
import type { BotDeps } from "./shared.ts";

export function adminCommands(deps: BotDeps): Composer<Context> {
  const c = new Composer();
  c.command(["start", "help"], (ctx) => ctx.reply(HELP, { parse_mode: "HTML" }));

  c.command("agents", async (ctx) => {
    const agents = await registryStub(deps.env).listAgents();
    if (agents.length === 0) {
      await ctx.reply("No agent is connected. Use /pair to connect a laptop.");
      return;
    }
    const lines = agents.map(
      (a) =>
        `🖥 <b>${esc(a.name)}</b> · ${esc(a.workspaces.join(", "))} · ${a.running}/${a.maxConcurrency} busy${a.allowShell ? " · shell" : ""}`,
    );
    await ctx.reply(`<b>Agents online</b>\n${lines.join("\n")}`, { parse_mode: "HTML" });
  });

  c.command("pair", async (ctx) => {
    const issued = await issuePairingCode(deps.env, { name: "telegram", createdBy: `telegram:${ctx.from?.id}` });
    await ctx.reply(
      `🔗 Pairing code <code>${issued.code}</code> (single use, valid 10 minutes).\nOn the laptop:\n<pre>npx skynet-agent pair ${esc(deps.origin)} ${issued.code}\nnpx skynet-agent connect --workspace default=/path/to/project</pre>`,
      { parse_mode: "HTML" },
    );
  });
  return c;
}
