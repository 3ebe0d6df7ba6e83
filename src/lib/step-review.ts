// What each step of a job will really do, for the person approving it: the catalog action and its
// params exactly as the agent will receive them (the authority), with the planner's description
// only as a label. Shared by the Telegram message, the JSON API and the CLI.
import type { JobView, JsonObject, PlanReview, ReviewField, StepReview } from "../../protocol/index.ts";
import { buildExecutionSpec } from "../core/dispatcher.ts";

/** Longest content preview kept in a review (the full content stays in `params`). */
export const CONTENT_PREVIEW_CHARS = 4000;

const byteLength = (s: string): number => new TextEncoder().encode(s).length;

function preview(name: string, text: string, block = true): ReviewField {
  if (text.length <= CONTENT_PREVIEW_CHARS) return { name, value: text, block };
  return { name, value: text.slice(0, CONTENT_PREVIEW_CHARS), block, omitted: text.length - CONTENT_PREVIEW_CHARS };
}

const str = (v: unknown, fallback = ""): string => (typeof v === "string" ? v : fallback);
const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

/** The params of one action as named fields a person can check. */
export function describeParams(action: string, params: JsonObject): ReviewField[] {
  switch (action) {
    case "write_file": {
      const content = str(params.content);
      return [
        { name: "path", value: str(params.path) },
        {
          name: "size",
          value: `${byteLength(content)} bytes, ${content.split("\n").length} line(s)${params.overwrite ? "; replaces the file if it exists" : "; refused if the file exists"}`,
        },
        preview("content", content),
      ];
    }
    case "run_command":
      return [{ name: "argv", value: JSON.stringify(list(params.argv)) }];
    case "git_commit":
      return [
        { name: "message", value: str(params.message) },
        {
          name: "stages",
          value:
            params.addAll === false
              ? "only what is already staged (no git add)"
              : "EVERYTHING in the workspace first (git add -A): new, changed and deleted files, build output included unless .gitignored",
        },
      ];
    case "git_push":
      return [
        { name: "remote", value: str(params.remote, "origin") },
        { name: "branch", value: str(params.branch) || "the current branch (git's push.default)" },
      ];
    case "run_tests":
    case "build_project":
    case "lint":
    case "install_deps":
      return [
        { name: "runner", value: str(params.runner) || "detected from the workspace" },
        ...(list(params.args).length > 0 ? [{ name: "args", value: JSON.stringify(list(params.args)) }] : []),
      ];
    case "search_code":
      return [
        { name: "pattern", value: str(params.pattern) },
        { name: "path", value: str(params.path) || "." },
      ];
    default:
      return Object.entries(params).map(([name, v]) => ({
        name,
        value: typeof v === "string" ? v : JSON.stringify(v),
      }));
  }
}

/**
 * The job's steps as they will run. Before approval the execution spec does not exist yet; it is
 * built here exactly as the dispatcher will build it on approval, so what is shown is what runs.
 */
export function reviewJob(job: JobView): PlanReview | null {
  const plan = job.plan;
  let spec = job.spec;
  if (!spec && job.steps.length > 0) {
    // Dispatched without a recorded spec (not expected): say the params are unknown, never guess.
    return {
      steps: job.steps.map((s, i) => ({
        n: i + 1,
        action: s.action,
        risk: s.risk,
        label: s.description,
        params: {},
        fields: [{ name: "params", value: "unknown (no execution spec recorded)" }],
      })),
      error: null,
    };
  }
  let error: string | null = null;
  if (!spec && plan) {
    const built = buildExecutionSpec(plan, { attempt: 1, projectId: job.projectId, jobTimeoutS: 3600 });
    if (built.ok) spec = built.value;
    else error = `this plan cannot run as written: ${built.error}`;
  }
  if (spec) {
    const steps: StepReview[] = spec.steps.map((s, i) => ({
      n: i + 1,
      action: s.action,
      risk: s.risk,
      label: plan?.proposedSteps[i]?.description ?? "",
      params: s.params,
      fields: describeParams(s.action, s.params),
    }));
    return { steps, error };
  }
  if (!plan) return null;
  return {
    steps: plan.proposedSteps.map((s, i) => ({
      n: i + 1,
      action: s.action ?? "?",
      risk: s.risk,
      label: s.description,
      params: s.params ?? {},
      fields: describeParams(s.action ?? "?", s.params ?? {}),
    })),
    error,
  };
}

/** Plain-text lines of a review (CLI, the "full plan" document). `max` caps each value. */
export function reviewLines(review: PlanReview, max = Number.POSITIVE_INFINITY): string[] {
  const lines: string[] = [];
  if (review.error) lines.push(`! ${review.error}`);
  for (const s of review.steps) {
    lines.push(`${s.n}. ${s.action} · ${s.risk}`);
    for (const f of s.fields) {
      const shown = f.value.length > max ? f.value.slice(0, max) : f.value;
      const left = (f.omitted ?? 0) + (f.value.length - shown.length);
      const more = left > 0 ? `\n     … [${left} more characters not shown]` : "";
      if (f.block) lines.push(`   ${f.name}:`, ...shown.split("\n").map((l) => `     | ${l}`));
      else lines.push(`   ${f.name}: ${shown}`);
      if (more) lines.push(more.slice(1));
    }
    if (s.label) lines.push(`   planner's note: "${s.label}"`);
  }
  return lines;
}
