// Telegram message rendering, HTML parse mode only: every user- and log-derived string passes
// through esc() (which also makes bidi and zero-width characters visible); every message stays
// under Telegram's 4096-character limit. Steps are shown by their action and params, the
// planner's description only as a label, so the person approving sees what will run.
import {
  escapeHtml,
  isTerminal,
  type JobView,
  LOG_TAIL_LINES,
  type PlanReview,
  type ReviewField,
  type RiskLevel,
  type StepReview,
  type StepView,
} from "../../protocol/index.ts";
import { reviewJob } from "../lib/step-review.ts";
import { makeVisible } from "../lib/text-safety.ts";

export const MAX_MESSAGE = 4096;
/** Room left for the log tail in a summary after the rest of the message. */
const TAIL_BUDGET = 1500;

/** The first `max` UTF-16 units of text without splitting a surrogate pair (an emoji). */
export function clipText(text: string, max: number): string {
  if (text.length <= max) return text;
  const code = text.charCodeAt(max - 1);
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}

export function esc(text: string): string {
  return escapeHtml(makeVisible(text));
}

export const RISK_BADGE: Record<RiskLevel, string> = {
  READ_ONLY: "🟢 READ_ONLY",
  WRITE: "🟡 WRITE",
  ADMIN: "🔴 ADMIN",
};

const STEP_ICON: Record<StepView["state"], string> = {
  pending: "⏸",
  running: "▶️",
  succeeded: "✅",
  failed: "❌",
  cancelled: "⛔",
  skipped: "⏭",
};

const STATUS_HEADER: Record<JobView["status"], string> = {
  CREATED: "🧠 Planning…",
  PLANNED: "📋 Plan ready",
  QUEUED: "⏳ Queued, waiting for an agent",
  RUNNING: "🏃 Running",
  SUCCEEDED: "✅ Succeeded",
  FAILED: "❌ Failed",
  CANCELLED: "⛔ Cancelled",
};

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000); // rounded once, so 119.6 s is "2 min 0 s", never "1 min 60 s"
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** The last lines of text that fit in `budget` characters (after escaping). */
export function tailThatFits(text: string, budget: number): string {
  const lines = text.split("\n");
  const out: string[] = [];
  let size = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = clipText(lines[i] ?? "", 300);
    const cost = esc(line).length + 1;
    if (size + cost > budget) break;
    out.unshift(line);
    size += cost;
  }
  return out.join("\n");
}

/**
 * Per-value caps tried in turn until the whole message fits (the approval view comes first);
 * the last, COMPACT, lists each step's action and risk only and says where the params are.
 */
const COMPACT = -1;
const VALUE_CAPS = [1500, 700, 300, 120, 40, 0, COMPACT];

function fieldHtml(f: ReviewField, cap: number, more: string): string[] {
  const shown = clipText(f.value, cap);
  const left = (f.omitted ?? 0) + f.value.length - shown.length;
  const cut = left > 0 ? ` <i>… [${left} more characters; ${more}]</i>` : "";
  if (f.block) {
    if (shown.length === 0) return [`   ${esc(f.name)}:${cut}`];
    return [`   ${esc(f.name)}:${cut}`, `<pre>${esc(shown)}</pre>`];
  }
  // One line per field: a newline inside a value is shown, not obeyed.
  return [`   ${esc(f.name)}: <code>${esc(shown.replaceAll("\n", "↵"))}</code>${cut}`];
}

function stepHtml(r: StepReview, run: StepView | undefined, cap: number, more: string): string[] {
  const head = [
    `${STEP_ICON[run?.state ?? "pending"]} <b>${r.n}.</b> <code>${esc(r.action)}</code>`,
    RISK_BADGE[r.risk],
  ];
  if (run?.exitCode !== null && run?.exitCode !== undefined) head.push(`exit ${run.exitCode}`);
  if (run && run.durationMs !== null && run.state !== "running") head.push(duration(run.durationMs));
  const lines = [head.join(" · ")];
  if (cap === COMPACT) return lines;
  for (const f of r.fields) lines.push(...fieldHtml(f, f.block ? cap : Math.max(cap, 40), more));
  if (r.label) lines.push(`   <i>planner's note: “${esc(clipText(r.label, Math.max(cap, 80)))}”</i>`);
  return lines;
}

/** The steps with their params, values capped at `cap` characters. */
export function stepsHtml(job: JobView, review: PlanReview, cap: number): string[] {
  const more = `/plan ${job.id} shows all`;
  const lines: string[] = [];
  if (review.error) lines.push(`⚠️ ${esc(clipText(review.error, 600))}`);
  for (const r of review.steps) lines.push(...stepHtml(r, job.steps[r.n - 1], cap, more));
  if (cap === COMPACT) lines.push(`✂️ <i>No room for the steps' params here: ${more}.</i>`);
  return lines;
}

/** The one message a job lives in: plan, then progress, then the summary. */

export function renderJob(job: JobView, opts: { approvalTimeoutS?: number } = {}): string {
  const parts: string[] = [];
  // The summary starts with the answer to what was asked; the rest is how it was found.
  const answer = isTerminal(job.status) ? answerLine(job) : null;
  if (answer) parts.push(answer, "");
  parts.push(`<b>${STATUS_HEADER[job.status]}</b> · <code>${job.id}</code>`);
  parts.push(`<i>${esc(clipText(job.intent, 500))}</i>`);
  if (job.status === "CREATED") return parts.join("\n");
  const review = reviewJob(job);
  const stepsAt = parts.length;
  const facts: string[] = [];
  if (job.risk) facts.push(`Risk: ${RISK_BADGE[job.risk]}`);
  if (job.plan && job.plan.expectedArtifacts.length > 0) {
    facts.push(`Expected: ${esc(job.plan.expectedArtifacts.join(", "))}`);
  }
  if (job.attempt > 1) facts.push(`attempt ${job.attempt}`);
  if (job.tokens && job.tokens.calls > 0) {
    const t = job.tokens;
    facts.push(`🔢 ${t.input + t.cachedInput + t.cacheWrite} in (${t.cachedInput} cached) / ${t.output} out tokens`);
  }
  if (facts.length) parts.push("", facts.join(" · "));
  if (job.status === "PLANNED" && job.needsApproval) {
    const t = opts.approvalTimeoutS ?? 300;
    parts.push(`⚠️ Needs your approval (cancelled automatically after ${t % 60 === 0 ? `${t / 60} min` : `${t} s`}).`);
  } else if (job.decidedBy === "auto" && !isTerminal(job.status)) {
    parts.push("✔️ READ_ONLY: auto-approved.");
  }
  if (job.startedAt && job.finishedAt) {
    parts.push(`⏱ ${duration(Date.parse(job.finishedAt) - Date.parse(job.startedAt))}`);
  }
  if (job.error) parts.push(`Reason: ${esc(clipText(job.error, 600))}`);
  if (job.notice && !isTerminal(job.status)) parts.push(`⚠️ ${esc(clipText(job.notice, 600))}`);
  if (job.planNotice) parts.push(`ℹ️ ${esc(clipText(job.planNotice, 300))}`);
  if (job.artifacts.length > 0) {
    parts.push(`📎 ${job.artifacts.map((a) => `${esc(a.name)} (${a.size} B)`).join(", ")}`);
  }
  for (const lost of job.artifactsNotStored ?? []) {
    parts.push(`⚠️ ${esc(lost.name)} was not stored: ${esc(clipText(lost.reason, 200))}`);
  }
  if (review) {
    // Planned: file contents get most of the room; later the log tail does.
    const approving = job.status === "PLANNED";
    const room = MAX_MESSAGE - parts.join("\n").length - (approving ? 120 : TAIL_BUDGET + 120);
    let lines: string[] = [];
    for (const cap of approving ? VALUE_CAPS : VALUE_CAPS.slice(2)) {
      lines = stepsHtml(job, review, cap);
      if (lines.join("\n").length <= room) break;
    }
    parts.splice(stepsAt, 0, "", ...lines);
  }
  const terminal = isTerminal(job.status);
  if ((terminal || job.status === "RUNNING") && job.logTail.trim()) {
    const used = parts.join("\n").length;
    const tail = tailThatFits(job.logTail, Math.min(TAIL_BUDGET, MAX_MESSAGE - used - 80));
    // The view carries at most LOG_TAIL_LINES lines: a full tail, or one cut to fit, has earlier lines.
    const cut = tail !== job.logTail || job.logTail.split("\n").length >= LOG_TAIL_LINES;
    if (tail.trim()) {
      if (cut) parts.push(`<i>… earlier lines not shown: /logs ${job.id}</i>`);
      parts.push(`<pre>${esc(tail)}</pre>`);
    }
  }
  return clip(parts.join("\n"));
}

/** "💬 <answer>", marked when it was written from the results without a model. */
export function answerLine(job: JobView): string | null {
  if (!job.answer?.text) return null;
  const by = job.answer.by === "rules" ? " <i>(from the results)</i>" : "";
  return `💬 ${esc(clipText(job.answer.text, 1200))}${by}`;
}

/** Last resort: cut a rendered message on a line boundary outside any tag. */
export function clip(html: string): string {
  if (html.length <= MAX_MESSAGE) return html;
  const cut = html.lastIndexOf("\n", MAX_MESSAGE - 20);
  const head = html.slice(0, cut > 0 ? cut : MAX_MESSAGE - 20);
  // Drop an unclosed <pre> (the tail is the only multi-line tag).
  const balanced =
    head.lastIndexOf("<pre>") > head.lastIndexOf("</pre>") ? head.slice(0, head.lastIndexOf("<pre>")) : head;
  return `${balanced}\n…`;
}

export const HELP = `<b>SKYNET</b> — tell me what to do on your laptop.

/task &lt;what to do&gt; — plan and run a task, e.g. <code>/task check git status, run tests and build</code>
/task @project &lt;what to do&gt; — the same in another workspace the agent serves
/status &lt;id&gt; — a job's progress
/jobs — your recent jobs
/logs &lt;id&gt; [lines] — the last lines of a job's log
/artifacts &lt;id&gt; — a job's files
/plan &lt;id&gt; — every step's action and params in full, as a file
/approve &lt;id&gt; · /deny &lt;id&gt; · /cancel &lt;id&gt;
/retry &lt;id&gt; — run a job's task again
/agents — connected laptops
/pair — a code to connect a new laptop
/web — a one-time sign-in link to the web console
/help — this message

READ_ONLY tasks run at once; anything that writes waits for your approval.`;
