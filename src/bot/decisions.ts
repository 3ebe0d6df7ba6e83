// Decisions: /approve, /deny, /cancel and every inline button. Only the requester or an admin
// may decide or even see the job (anyone else is told it does not exist); a second press, or a
// press after the decision, is answered without changing anything.
import { Composer, type Context } from "grammy";
import type { JobView } from "../../protocol/index.ts";
import { approvePlan, cancelJob, denyPlan } from "../core/orchestrator.ts";
import { parseCallback } from "./keyboards.ts";
import { actorOf, type BotDeps, friendly, jobIdArg, sendLogs, sendPlan, UNKNOWN_JOB, visibleJob } from "./shared.ts";
import { jobsPage, startTask } from "./tasks.ts";

type Decision = "approve" | "deny" | "cancel";

async function decide(deps: BotDeps, ctx: Context, job: JobView, what: Decision): Promise<string> {
  const actor = actorOf(ctx, deps.config);
  const jobId = job.id;
  try {
    if (what === "approve") {
      await approvePlan(deps.env, jobId, actor);
      return "✅ Approved; it is on its way to an agent.";
    }
    if (what === "deny") {
      // The job itself records "denied by <who>"; passing that again as the reason doubled it.
      await denyPlan(deps.env, jobId, actor);
      return "✖️ Denied; nothing will run.";
    }
    if (job.status === "PLANNED") {
      await denyPlan(deps.env, jobId, actor, "cancelled before approval");
      return "✖️ Cancelled; nothing ran.";
    }
    await cancelJob(deps.env, jobId, actor);
    return "⛔ Cancelled.";
  } catch (err) {
    return friendly(err);
  }
}

export function decisionCommands(deps: BotDeps): Composer<Context> {
  const c = new Composer();
  for (const what of ["approve", "deny", "cancel"] as const) {
    c.command(what, async (ctx) => {
      const jobId = await jobIdArg(ctx, `/${what} <job id>`);
      if (!jobId) return;
      const job = await visibleJob(deps, ctx, jobId);
      await ctx.reply(job ? await decide(deps, ctx, job, what) : UNKNOWN_JOB);
    });
  }

  c.on("callback_query:data", async (ctx) => {
    const cb = parseCallback(ctx.callbackQuery.data);
    if (!cb) {
      await ctx.answerCallbackQuery({ text: "This button is no longer valid.", show_alert: true });
      return;
    }
    if (cb.kind === "jobs") {
      await ctx.answerCallbackQuery();
      await jobsPage(ctx, deps, cb.cursor);
      return;
    }
    const job = await visibleJob(deps, ctx, cb.jobId);
    if (!job) {
      await ctx.answerCallbackQuery({ text: "That job does not exist (any more).", show_alert: true });
      return;
    }
    switch (cb.kind) {
      case "approve":
      case "cancel": {
        const text = await decide(deps, ctx, job, cb.kind);
        await ctx.answerCallbackQuery({ text: text.slice(0, 200) });
        return;
      }
      case "logs":
        await ctx.answerCallbackQuery();
        await sendLogs(ctx, deps.env, cb.jobId, 50);
        return;
      case "plan":
        await ctx.answerCallbackQuery();
        await sendPlan(ctx, deps.env, job);
        return;
      case "retry":
        await ctx.answerCallbackQuery({ text: "Running it again…" });
        await startTask(ctx, deps, job.intent, job.projectId);
        return;
    }
  });
  return c;
}
