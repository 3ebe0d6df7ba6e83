// Telegram message rendering, HTML parse mode only: every user- and log-derived string passes
// through esc(); every message stays under Telegram's 4096-character limit.
import type { JobView, RiskLevel, StepView } from "../../protocol/index.ts";

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
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
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
  const s = ms / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
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

function stepLine(s: StepView, i: number): string {
  const bits = [`${STEP_ICON[s.state]} ${i + 1}. ${esc(s.description)} <code>${esc(s.action)}</code>`];
  if (s.risk !== "READ_ONLY") bits.push(s.risk === "ADMIN" ? "🔴" : "🟡");
  if (s.exitCode !== null) bits.push(`exit ${s.exitCode}`);
  if (s.durationMs !== null && s.state !== "running") bits.push(duration(s.durationMs));
  return bits.join(" · ");
}

/** The one message a job lives in: plan, then progress, then the summary. */
const terminalStatus = (s: JobView["status"]): boolean => s === "SUCCEEDED" || s === "FAILED" || s === "CANCELLED";

export function renderJob(job: JobView, opts: { approvalTimeoutS?: number } = {}): string {
  const parts: string[] = [];
  parts.push(`<b>${STATUS_HEADER[job.status]}</b> · <code>${job.id}</code>`);
  parts.push(`<i>${esc(clipText(job.intent, 500))}</i>`);
  if (job.status === "CREATED") return parts.join("\n");
  if (job.steps.length > 0) {
    parts.push("", ...job.steps.slice(0, 20).map(stepLine));
  } else if (job.plan) {
    parts.push(
      "",
      ...job.plan.proposedSteps.map(
        (s, i) => `⏸ ${i + 1}. ${esc(s.description)} <code>${esc(s.action ?? "?")}</code> · ${RISK_BADGE[s.risk]}`,
      ),
    );
  }
  const facts: string[] = [];
  if (job.risk) facts.push(`Risk: ${RISK_BADGE[job.risk]}`);
  if (job.plan && job.plan.expectedArtifacts.length > 0) {
    facts.push(`Expected: ${esc(job.plan.expectedArtifacts.join(", "))}`);
  }
  if (job.attempt > 1) facts.push(`attempt ${job.attempt}`);
  if (facts.length) parts.push("", facts.join(" · "));
  if (job.status === "PLANNED" && job.needsApproval) {
    const mins = Math.round((opts.approvalTimeoutS ?? 300) / 60);
    parts.push(`⚠️ Needs your approval (cancelled automatically after ${mins} min).`);
  } else if (job.decidedBy === "auto" && !["SUCCEEDED", "FAILED", "CANCELLED"].includes(job.status)) {
    parts.push("✔️ READ_ONLY: auto-approved.");
  }
  if (job.startedAt && job.finishedAt) {
    parts.push(`⏱ ${duration(Date.parse(job.finishedAt) - Date.parse(job.startedAt))}`);
  }
  if (job.error) parts.push(`Reason: ${esc(clipText(job.error, 600))}`);
  if (job.notice && !terminalStatus(job.status)) parts.push(`⚠️ ${esc(clipText(job.notice, 600))}`);
  if (job.artifacts.length > 0) {
    parts.push(`📎 ${job.artifacts.map((a) => `${esc(a.name)} (${a.size} B)`).join(", ")}`);
  }
  const terminal = ["SUCCEEDED", "FAILED", "CANCELLED"].includes(job.status);
  if ((terminal || job.status === "RUNNING") && job.logTail.trim()) {
    const used = parts.join("\n").length;
    const tail = tailThatFits(job.logTail, Math.min(TAIL_BUDGET, MAX_MESSAGE - used - 40));
    if (tail.trim()) parts.push(`<pre>${esc(tail)}</pre>`);
  }
  return clip(parts.join("\n"));
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
/approve &lt;id&gt; · /deny &lt;id&gt; · /cancel &lt;id&gt;
/retry &lt;id&gt; — run a job's task again
/agents — connected laptops
/pair — a code to connect a new laptop
/help — this message

READ_ONLY tasks run at once; anything that writes waits for your approval.`;
