// /web: a one-time link that signs this Telegram user in to the web console (their own jobs; all
// of them for admins). Single use, 10 minutes; the code rides in the URL fragment, never sent to a server.
import { Composer, type Context } from "grammy";
import { issueLoginLink } from "../web/session.ts";
import { esc } from "./format.ts";
import { actorOf, type BotDeps } from "./shared.ts";

export function webCommand(deps: BotDeps): Composer<Context> {
  const c = new Composer();
  c.command("web", async (ctx) => {
    const actor = actorOf(ctx, deps.config);
    if (!actor.id) return;
    const { code } = await issueLoginLink(deps.env, actor.id);
    await ctx.reply(
      `🔐 Sign in to the web console (single use, valid 10 minutes; do not forward it):\n${esc(`${deps.origin}/web/link#${code}`)}`,
      { parse_mode: "HTML", link_preview_options: { is_disabled: true } },
    );
  });
  return c;
}
