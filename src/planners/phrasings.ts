// The phrasings the catalog's own phrases miss, each anchored to a whole clause: a path after
// "in", a branch after "push to", a count, a "since", a runner, a well-known file. Tried in order
// by readClause (phrasing.ts) before the catalog's phrases.
import { type ActionName, splitArgv } from "../../protocol/index.ts";
import type { ClauseReading } from "./clause.ts";

const NUMBER_WORDS: Record<string, number> = {
  a: 1,
  an: 1,
  one: 1,
  two: 2,
  three: 3,
  four: 4,
  five: 5,
  six: 6,
  seven: 7,
  eight: 8,
  nine: 9,
  ten: 10,
  twenty: 20,
};
const NUM = String.raw`(?:\d{1,3}|a|an|one|two|three|four|five|six|seven|eight|nine|ten|twenty)`;
const toNumber = (s: string): number => NUMBER_WORDS[s.toLowerCase()] ?? Number.parseInt(s, 10);

/** A "since …" as a value git's --since reads, or undefined when it is not one this knows. */
export function sinceValue(text: string): string | undefined {
  const t = text
    .trim()
    .toLowerCase()
    .replace(/^the\s+/, "");
  if (t === "yesterday") return "yesterday";
  if (t === "today" || t === "this morning" || t === "midnight") return "midnight";
  if (/^\d{4}-\d{2}-\d{2}$/.test(t)) return t;
  const last = new RegExp(`^(?:last|past)\\s+(?:(${NUM})\\s+)?(hour|day|week|month|year)s?$`).exec(t);
  if (last) return `${last[1] ? toNumber(last[1]) : 1} ${last[2]}${last[1] && toNumber(last[1]) > 1 ? "s" : ""} ago`;
  const ago = new RegExp(`^(${NUM})\\s+(hour|day|week|month|year)s?\\s+ago$`).exec(t);
  if (ago?.[1]) return `${toNumber(ago[1])} ${ago[2]}${toNumber(ago[1]) > 1 ? "s" : ""} ago`;
  return undefined;
}

const PATH = String.raw`(?<path>[^\s,;]+)`;
const IN_PATH = String.raw`(?:in|under|inside|within|from)\s+(?:the\s+)?${PATH}(?:\s+(?:folder|directory|dir))?`;
const RUNNERS = "npm|pnpm|yarn|pytest|go|cargo|make";
const WELL_KNOWN_FILES: Record<string, string> = {
  readme: "README.md",
  changelog: "CHANGELOG.md",
  license: "LICENSE",
  licence: "LICENSE",
};

type Rule = { re: RegExp; read: (g: Record<string, string | undefined>) => ClauseReading | undefined };
export const step = (action: ActionName, params: Record<string, unknown> = {}): ClauseReading => ({
  kind: "step",
  action,
  params,
  sure: true,
});
const noPlural = (s: string): string => s.replace(/^([A-Z]{3,})s$/, "$1");
const dropUndefined = (o: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

// Tried in order against the whole (politeness-stripped) clause, before the catalog's phrases.
export const RULES: Rule[] = [
  {
    re: new RegExp(
      `^(?:list|show(?:\\s+me)?)\\s+(?:all\\s+|the\\s+)*(?:files|contents?)\\s+(?:of|in|under|inside|within)\\s+(?:the\\s+)?${PATH}(?:\\s+(?:folder|directory|dir))?$`,
      "i",
    ),
    read: (g) => step("list_files", { path: g.path }),
  },
  {
    re: new RegExp(`^(?:ls|list)\\s+(?:the\\s+)?${PATH}(?:\\s+(?:folder|directory|dir))?$`, "i"),
    read: (g) => (/^(?:all|files|everything)$/i.test(g.path ?? "") ? undefined : step("list_files", { path: g.path })),
  },
  {
    re: /^what(?:'s|\s+is)\s+in\s+(?<path>[\w./-]*\.[\w-]+)$/i,
    read: (g) => step("read_file", { path: g.path }),
  },
  {
    re: new RegExp(`^what(?:'s|\\s+is)\\s+${IN_PATH}$`, "i"),
    read: (g) => step("list_files", { path: g.path }),
  },
  {
    re: /^(?:show|read|open|cat|print|display)\s+(?:me\s+)?(?:the\s+)?(?<name>readme|changelog|licen[cs]e)(?:\s+file)?$/i,
    read: (g) => step("read_file", { path: WELL_KNOWN_FILES[(g.name ?? "").toLowerCase()] }),
  },
  {
    re: new RegExp(
      `^(?:find|search(?:\\s+for)?|grep(?:\\s+for)?|look\\s+for)\\s+(?:all\\s+|the\\s+)?(?<pattern>[A-Z]{3,}s?)(?:\\s+comments?)?(?:\\s+${IN_PATH})?$`,
    ),
    read: (g) => step("search_code", dropUndefined({ pattern: noPlural(g.pattern ?? ""), path: g.path })),
  },
  {
    re: new RegExp(
      `^(?:find|search(?:\\s+(?:the\\s+)?(?:code|codebase|repo))?\\s+for|grep(?:\\s+for)?|look\\s+for)\\s+(?:all\\s+)?(?:usages?\\s+of\\s+)?(?<pattern>"[^"]+"|'[^']+'|\`[^\`]+\`|\\S+)\\s+${IN_PATH}$`,
      "i",
    ),
    read: (g) => step("search_code", { pattern: noPlural(unquote(g.pattern ?? "")), path: g.path }),
  },
  {
    re: /^(?:find|search\s+for|look\s+for)\s+(?:all\s+)?(?:usages?|uses|callers)\s+of\s+(?<pattern>\S+)$/i,
    read: (g) => step("search_code", { pattern: unquote(g.pattern ?? "") }),
  },
  {
    re: /^where\s+is\s+(?<pattern>\S+)\s+(?:used|defined|called)$/i,
    read: (g) => step("search_code", { pattern: unquote(g.pattern ?? "") }),
  },
  {
    re: /^(?:what|which\s+(?:commits|changes))\s+(?:has\s+|have\s+)?(?:changed|happened|was\s+committed|landed)\s+since\s+(?<since>.+)$/i,
    read: (g) => since(g.since),
  },
  {
    re: /^(?:show\s+(?:me\s+)?)?(?:the\s+)?(?:commits|changes|log|history|git\s+log)\s+(?:from|since)\s+(?<since>.+)$/i,
    read: (g) => since(g.since),
  },
  {
    re: new RegExp(
      `^(?:show|list|give|get)\\s+(?:me\\s+)?(?:the\\s+)?(?:last|latest|recent|most\\s+recent)\\s+(?<n>${NUM})\\s+commits?$`,
      "i",
    ),
    read: (g) => step("git_log", { limit: toNumber(g.n ?? "1") }),
  },
  {
    re: new RegExp(
      `^(?:what|show\\s+(?:me\\s+)?what)\\s+(?:has\\s+)?changed\\s+in\\s+the\\s+(?:last|latest|past)\\s+(?<n>${NUM})\\s+commits?$`,
      "i",
    ),
    read: (g) => step("git_log", { limit: toNumber(g.n ?? "1") }),
  },
  {
    re: /^(?:show|what\s+(?:is|was)|what's|give\s+me)\s+(?:me\s+)?(?:the\s+)?(?:last|latest|most\s+recent)\s+commit$/i,
    read: () => step("git_log", { limit: 1 }),
  },
  {
    re: /^(?:git\s+log|commit\s+history|history)\s+(?:-n\s*)?(?<n>\d{1,3})$/i,
    read: (g) => step("git_log", { limit: toNumber(g.n ?? "1") }),
  },
  {
    re: /^(?:show\s+(?:me\s+)?)?(?:the\s+)?(?:what'?s\s+|what\s+is\s+)?staged(?:\s+changes)?$|^(?:git\s+)?diff\s+--(?:staged|cached)$|^show\s+(?:me\s+)?(?:the\s+)?staged\s+(?:changes|diff)$/i,
    read: () => step("git_diff", { staged: true }),
  },
  {
    re: new RegExp(
      `^(?:show\\s+(?:me\\s+)?(?:the\\s+)?(?:diff|changes)|(?:git\\s+)?diff|what\\s+changed)\\s+(?:of|in|for|to)\\s+${PATH}$`,
      "i",
    ),
    read: (g) => step("git_diff", { path: g.path }),
  },
  {
    re: /^(?:what\s+(?:has\s+)?changed|what\s+did\s+i\s+change|what\s+have\s+i\s+changed|any\s+changes|what'?s\s+changed)$/i,
    read: () => step("git_diff"),
  },
  {
    re: /^(?:what'?s\s+the\s+|what\s+is\s+the\s+|show\s+(?:me\s+)?the\s+|check\s+the\s+)?(?:git\s+)?status$/i,
    read: () => step("git_status"),
  },
  {
    re: /^(?:are|do|did|does)\s+(?:the\s+|all\s+(?:the\s+)?|my\s+)?tests?\s+(?:pass(?:ing)?|green|fail(?:ing)?|still\s+pass(?:ing)?|still\s+fail(?:ing)?)$/i,
    read: () => step("run_tests"),
  },
  {
    re: /^(?:does\s+it|does\s+the\s+project|will\s+it|can\s+it)\s+(?:build|compile)$/i,
    read: () => step("build_project"),
  },
  {
    re: new RegExp(
      `^(?:run\\s+)?(?:the\\s+)?(?:tests?\\s+(?:with|using)\\s+(?<runner>${RUNNERS})|(?<runner2>${RUNNERS})\\s+test|(?<runner3>pytest))(?:\\s+(?<args>-.*))?$`,
      "i",
    ),
    read: (g) =>
      step(
        "run_tests",
        dropUndefined({
          runner: (g.runner ?? g.runner2 ?? g.runner3)?.toLowerCase(),
          args: g.args ? splitArgv(g.args) : undefined,
        }),
      ),
  },
  {
    re: new RegExp(`^(?:build|compile)\\s+(?:it\\s+|the\\s+project\\s+)?(?:with|using)\\s+(?<runner>${RUNNERS})$`, "i"),
    read: (g) => step("build_project", { runner: g.runner?.toLowerCase() }),
  },
  {
    re: /^(?:git\s+)?(?:push)\b(?<what>(?:\s+(?:it|this|that|them|everything|(?:the|my|these)\s+(?:changes|commits?)|commits?|changes))?)(?:\s+(?:the\s+)?(?:branch\s+(?<branchA>[\w./-]+)|(?<branchB>[\w./-]+)\s+branch))?(?:\s+(?:to|up\s+to|into|onto)\s+(?<dest>.+?))?(?:\s+(?:as\s+well|too))?$/i,
    read: (g) => push(g.branchA ?? g.branchB, g.dest),
  },
  {
    re: /^(?:git\s+)?commit\b.*?(?:\s+-m\s+|\s+(?:as|with|saying|message|titled|called)\s+)(?<message>"[^"]+"|'[^']+'|`[^`]+`)$/i,
    read: (g) => step("git_commit", { message: unquote(g.message ?? "") }),
  },
  {
    re: /^(?:git\s+)?commit(?:\s+(?:it|this|that|everything|all|(?:the|my|all\s+the|all)\s+(?:changes|work|files)|changes))?$/i,
    read: () => step("git_commit", { message: "Commit by SKYNET" }),
  },
  {
    re: /^(?:git\s+)?commit\s+(?<message>"[^"]+"|'[^']+'|`[^`]+`)$/i,
    read: (g) => step("git_commit", { message: unquote(g.message ?? "") }),
  },
];

function unquote(s: string): string {
  return s.trim().replace(/^["'`](.*)["'`]$/s, "$1");
}

function since(text: string | undefined): ClauseReading {
  const value = sinceValue(text ?? "");
  if (!value) {
    return {
      kind: "refuse",
      reason: `I don't know the time "since ${text}"; say yesterday, today, last week, 3 days ago or a date like 2026-01-31`,
    };
  }
  return step("git_log", { since: value, limit: 200 });
}

const REMOTES = /^(?:origin|upstream)$/i;
function push(branch: string | undefined, dest: string | undefined): ClauseReading | undefined {
  if (!dest) return step("git_push", dropUndefined({ branch }));
  const words = dest
    .replace(/^(?:the\s+)?/i, "")
    .replace(/\s+(?:branch|remote)$/i, "")
    .split(/[\s/]+/)
    .filter(Boolean);
  if (dest.trim().match(/^(?:the\s+)?remote$/i)) return step("git_push", dropUndefined({ branch }));
  const [first, second, ...rest] = words;
  if (!first || rest.length > 0) return undefined;
  if (REMOTES.test(first) || (second !== undefined && !/^branch$/i.test(second))) {
    // "origin", "origin main", "origin/main", "upstream dev"
    return step("git_push", dropUndefined({ remote: first, branch: second ?? branch }));
  }
  if (branch && branch !== first) return undefined;
  return step("git_push", { branch: first });
}
