// The coding agent's Allow once / Deny buttons. Only the job's requester may decide (anyone else
// is told the request does not exist); a second press, or one after the request was decided or
// expired, is answered so without changing anything.
import { Composer, type Context } from "grammy";
import { decidePermission, parsePermissionCallback } from "../coder/permissions.ts";
import { errorMessage, log } from "../lib/log.ts";
import type { BotDeps } from "./shared.ts";

const ANSWERS = {
  unknown: "That request does not exist (any more).",
  already_decided: "That request was already decided.",
  expired: "That request expired; it was denied.",
} as const;

export function permissionButtons(deps: BotDeps): Composer<Context> {
  const c = new Composer();
  c.on("callback_query:data", async (ctx, next) => {
    if (!ctx.callbackQuery.data.startsWith("pm:")) return next();
    const cb = parsePermissionCallback(ctx.callbackQuery.data);
    if (!cb) {
      await ctx.answerCallbackQuery({ text: "This button is no longer valid.", show_alert: true });
      return;
    }
    try {
      const out = await decidePermission(deps.env, cb.id, String(ctx.from.id), cb.decision);
      if (!out.ok) {
        await ctx.answerCallbackQuery({ text: ANSWERS[out.error.code], show_alert: true });
        return;
      }
      // The asking message itself was edited to say so (buttons gone) by decidePermission.
      await ctx.answerCallbackQuery({ text: cb.decision === "allow" ? "✅ Allowed once." : "✖️ Denied." });
    } catch (err) {
      log("error", "permission decision failed", { error: errorMessage(err) });
      await ctx.answerCallbackQuery({ text: "That did not work; try again.", show_alert: true });
    }
  });
  return c;
}
