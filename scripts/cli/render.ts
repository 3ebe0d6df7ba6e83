// Text output of the CLI. Everything that comes from a job (intent, params, log lines, errors)
// has terminal control sequences removed and bidi/zero-width characters made visible.
import type { JobSummary, JobView } from "../../protocol/index.ts";
import { reviewLines } from "../../src/lib/step-review.ts";
import { safeForTerminal } from "../../src/lib/text-safety.ts";

/** How the CLI is invoked in the hints it prints. */
export const CMD = "npx skynet";

/** Longest param value shown without --full. */
const PREVIEW_CHARS = 2000;

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const whole = Math.round(s);
  return `${Math.floor(whole / 60)} min ${whole % 60} s`;
}

export interface RenderOptions {
  full?: boolean;
  /** The log's last lines and whether earlier ones exist (shown for finished or running jobs). */
  log?: { lines: string[]; earlier: boolean };
}

/** "3 calls: 1200 input (900 cached), 240 output". */
export function tokensText(t: NonNullable<JobView["tokens"]>): string {
  return `${t.calls} model call${t.calls === 1 ? "" : "s"}: ${t.input + t.cachedInput + t.cacheWrite} input (${t.cachedInput} cached), ${t.output} output`;
}

export function renderJob(job: JobView, opts: RenderOptions = {}): string {
  const full = opts.full === true;
  const lines = [
    `${job.id}  ${job.status}  project ${job.projectId}  risk ${job.risk ?? "?"}${job.attempt > 1 ? `  attempt ${job.attempt}` : ""}`,
    `  "${job.intent}"`,
  ];
  if (job.answer?.text) {
    lines.push(`  answer${job.answer.by === "rules" ? " (from the results)" : ""}: ${job.answer.text}`);
  }
  if (job.planNotice) lines.push(`  note: ${job.planNotice}`);
  if (job.tokens && job.tokens.calls > 0) lines.push(`  tokens: ${tokensText(job.tokens)}`);
  if (job.startedAt && job.finishedAt) {
    lines.push(`  took ${duration(Date.parse(job.finishedAt) - Date.parse(job.startedAt))}`);
  }
  for (const s of job.steps) {
    const exit = s.exitCode === null ? "" : ` exit ${s.exitCode}`;
    const took = s.durationMs === null ? "" : ` ${duration(s.durationMs)}`;
    lines.push(`  ${s.stepId} ${s.action.padEnd(14)} ${s.state}${exit}${took}${s.error ? `  (${s.error})` : ""}`);
  }
  const approving = job.status === "PLANNED" && job.needsApproval;
  if (job.review && (approving || full)) {
    lines.push(approving ? "  to approve, check what each step will do:" : "  steps:");
    lines.push(...reviewLines(job.review, full ? Number.POSITIVE_INFINITY : PREVIEW_CHARS).map((l) => `  ${l}`));
    const cut = job.review.steps.some((s) =>
      s.fields.some((f) => (f.omitted ?? 0) > 0 || f.value.length > PREVIEW_CHARS),
    );
    if (!full && cut) lines.push(`  (some values are cut: ${CMD} status ${job.id} --full shows them whole)`);
  }
  if (approving) {
    const by = job.approvalDeadline ? ` before ${job.approvalDeadline}` : "";
    lines.push(`  waiting for approval${by}: ${CMD} approve ${job.id}   (or: ${CMD} deny ${job.id})`);
  }
  if (job.error) lines.push(`  error: ${job.error}`);
  if (job.artifacts.length > 0) {
    lines.push(`  artifacts: ${job.artifacts.map((a) => `${a.name} (${a.size} B)`).join(", ")}`);
  }
  if (opts.log && opts.log.lines.length > 0) {
    lines.push("  log:");
    if (opts.log.earlier) lines.push(`  | … earlier lines not shown: ${CMD} logs ${job.id}`);
    lines.push(...opts.log.lines.map((l) => `  | ${l}`));
  }
  return safeForTerminal(lines.join("\n"));
}

export function renderJobList(jobs: JobSummary[]): string {
  if (jobs.length === 0) return "no jobs yet";
  const rows = jobs.map(
    (j) => `${j.id}  ${j.status.padEnd(9)}  ${j.projectId.padEnd(12)}  ${j.createdAt}  ${j.intent}`,
  );
  return safeForTerminal(
    [
      `${"id".padEnd(jobs[0]?.id.length ?? 20)}  ${"status".padEnd(9)}  ${"project".padEnd(12)}  ${"created".padEnd(24)}  intent`,
      ...rows,
    ].join("\n"),
  );
}

export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return safeForTerminal(
    rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ")).join("\n"),
  );
}
