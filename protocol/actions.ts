// The action catalog: every action an agent may run, defined once for the planner, the policy
// engine, the dispatcher and the agent. Unknown actions are refused everywhere.
import { z } from "zod";
import { describeIssues } from "./issues.ts";
import type { JsonObject, RiskLevel } from "./jobs.ts";
import { err, ok, type Result } from "./result.ts";

export const CapabilitySchema = z.enum(["git", "fs", "runner", "shell", "code"]);
export type Capability = z.infer<typeof CapabilitySchema>;

/**
 * Control characters split log lines and fool terminals; bidi and zero-width characters make a
 * name read differently from what it is. Neither belongs in a path an approver has to read.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const UNREADABLE_IN_PATHS = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/;

/** A `.git` path segment as git would see it on any file system (case, NTFS trailing dots, 8.3 name). */
export function touchesGitDir(path: string): boolean {
  return path.split(/[\\/]+/).some((seg) => /^\.git[. ]*$/i.test(seg) || /^git~\d+$/i.test(seg));
}

/** A path inside the workspace. The agent re-checks it after resolving symlinks. */
export const RelativePathSchema = z
  .string()
  .min(1)
  .max(1024)
  .refine((p) => !p.includes("\0"), "paths may not contain NUL bytes")
  .refine(
    (p) => !UNREADABLE_IN_PATHS.test(p),
    "paths may not contain control characters (newline, tab, escape…) or invisible/bidirectional characters",
  )
  .refine((p) => !/^([A-Za-z]:)?[\\/]/.test(p) && !p.startsWith("~"), "paths must be relative to the workspace")
  .refine((p) => !p.split(/[\\/]+/).includes(".."), "paths may not leave the workspace ('..')");

/** A path an action writes: never inside `.git` (its config and hooks make git run programs). */
export const WritePathSchema = RelativePathSchema.refine(
  (p) => !touchesGitDir(p),
  "writing inside .git (or creating a .git file or directory) is not allowed",
);

export const RunnerSchema = z.enum(["npm", "pnpm", "yarn", "pytest", "go", "cargo", "make"]);
export type Runner = z.infer<typeof RunnerSchema>;

const ArgSchema = z
  .string()
  .max(4096)
  .refine((a) => !a.includes("\0"), "arguments may not contain NUL bytes");
const ExtraArgsSchema = z.array(ArgSchema).max(32).default([]);
const GitRefSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._/-]*$/, "a git remote or branch name: letters, digits, '.', '_', '/', '-'");

export const MAX_WRITE_BYTES = 1024 * 1024;

export const ActionParamsSchemas = {
  git_status: z.strictObject({}),
  git_diff: z.strictObject({ path: RelativePathSchema.optional(), staged: z.boolean().default(false) }),
  git_log: z.strictObject({
    limit: z.number().int().min(1).max(200).default(20),
    // Only forms git's --since reads the same everywhere; it is one argv element after "--since=".
    since: z
      .string()
      .regex(
        /^(?:yesterday|midnight|\d{1,3} (?:hour|day|week|month|year)s? ago|\d{4}-\d{2}-\d{2})$/,
        "since: yesterday, midnight, 'N days ago' (hours, weeks, months, years) or a date YYYY-MM-DD",
      )
      .optional(),
  }),
  list_files: z.strictObject({
    path: RelativePathSchema.default("."),
    maxDepth: z.number().int().min(1).max(10).default(3),
  }),
  read_file: z.strictObject({
    path: RelativePathSchema,
    maxBytes: z
      .number()
      .int()
      .min(1)
      .max(10 * 1024 * 1024)
      .default(1024 * 1024),
  }),
  search_code: z.strictObject({
    pattern: z.string().min(1).max(200),
    path: RelativePathSchema.optional(),
  }),
  run_tests: z.strictObject({ runner: RunnerSchema.optional(), args: ExtraArgsSchema }),
  build_project: z.strictObject({ runner: RunnerSchema.optional(), args: ExtraArgsSchema }),
  lint: z.strictObject({ runner: RunnerSchema.optional(), args: ExtraArgsSchema }),
  install_deps: z.strictObject({ runner: RunnerSchema.optional() }),
  write_file: z.strictObject({
    path: WritePathSchema,
    content: z.string().refine((c) => new TextEncoder().encode(c).length <= MAX_WRITE_BYTES, "content is over 1 MiB"),
    overwrite: z.boolean().default(false),
  }),
  git_commit: z.strictObject({ message: z.string().trim().min(1).max(500), addAll: z.boolean().default(true) }),
  git_push: z.strictObject({ remote: GitRefSchema.default("origin"), branch: GitRefSchema.optional() }),
  run_command: z.strictObject({ argv: z.array(ArgSchema).min(1).max(64) }),
  /** What the coding agent is asked to do; every tool it wants beyond reading is approved one by one. */
  code_task: z.strictObject({
    instruction: z
      .string()
      .trim()
      .min(1)
      .max(4000)
      .refine((s) => !s.includes("\0"), "the instruction may not contain NUL bytes"),
  }),
} as const;

export type ActionName = keyof typeof ActionParamsSchemas;
export const ActionNameSchema = z.enum(Object.keys(ActionParamsSchemas) as [ActionName, ...ActionName[]]);
export type ActionParams<A extends ActionName> = z.output<(typeof ActionParamsSchemas)[A]>;

type PhraseGroups = Record<string, string | undefined>;

export interface ActionDefinition {
  name: ActionName;
  risk: RiskLevel;
  capability: Capability;
  description: string;
  defaultTimeoutS: number;
  /** Phrases the rule planner and the dispatcher recognise, tried in catalog order. */
  phrases: readonly RegExp[];
  /** Params taken from a matching phrase's named groups (validated afterwards). */
  paramsFromPhrase?: (groups: PhraseGroups) => Record<string, string | string[] | undefined>;
}

/** Splits "a b 'c d'" into argv without any shell: quotes group, nothing is expanded. */
export function splitArgv(text: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (const m of text.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3] ?? "");
  return out;
}

const unquote = (s: string | undefined): string | undefined => s?.trim().replace(/^["'`](.*)["'`]$/s, "$1");

// Order matters: the first action whose phrase matches a clause wins, so the specific
// phrases ("run command X", "commit history", "create file") come before the general ones.
export const ACTION_CATALOG: readonly ActionDefinition[] = [
  {
    // First: "ask the coder to run the tests" is a task for the coder, not run_tests.
    name: "code_task",
    risk: "WRITE",
    capability: "code",
    description:
      "Have a coding agent work on an instruction in the workspace (for tasks needing judgment: fix a failing test, add a flag); each shell command or file edit it wants is approved by the requester",
    defaultTimeoutS: 900,
    phrases: [
      /^\s*code\s*:\s*(?<instruction>\S.*)$/is,
      /\bask\s+(?:the\s+)?(?:coder|coding\s+agent)\s+to\s+(?<instruction>\S.*)$/is,
    ],
    paramsFromPhrase: (g) => ({ instruction: g.instruction?.trim() }),
  },
  {
    name: "run_command",
    risk: "ADMIN",
    capability: "shell",
    description: "Run an explicit command (argv, no shell); the agent refuses it unless started with --allow-shell",
    defaultTimeoutS: 600,
    phrases: [
      /\b(?:run|execute)\s+(?:an?\s+|the\s+)?(?:invalid\s+|shell\s+|following\s+)?command\s+(?<command>.+)$/i,
      /\b(?:run|execute)\s+`(?<command>[^`]+)`/i,
    ],
    paramsFromPhrase: (g) => ({ argv: splitArgv(unquote(g.command) ?? "") }),
  },
  {
    name: "git_log",
    risk: "READ_ONLY",
    capability: "git",
    description: "Show recent commits (git log)",
    defaultTimeoutS: 60,
    phrases: [/\bgit\s+log\b/i, /\b(?:recent|last|latest)\s+(?:\d+\s+)?commits?\b/i, /\bcommit\s+history\b/i],
  },
  {
    name: "git_status",
    risk: "READ_ONLY",
    capability: "git",
    description: "Show the working tree status (git status)",
    defaultTimeoutS: 60,
    phrases: [/\bgit\s+status\b/i, /\b(?:repo|repository)\s+status\b/i, /\buncommitted\b/i],
  },
  {
    name: "git_diff",
    risk: "READ_ONLY",
    capability: "git",
    description: "Show uncommitted changes (git diff)",
    defaultTimeoutS: 60,
    phrases: [/\bgit\s+diff\b/i, /\bdiff\b/i, /\bshow\s+(?:me\s+)?(?:the\s+)?changes\b/i],
  },
  {
    name: "write_file",
    risk: "WRITE",
    capability: "fs",
    description: "Create or overwrite a file inside the workspace",
    defaultTimeoutS: 30,
    phrases: [
      /\b(?:create|write|make|add)\s+(?:a\s+)?(?:new\s+)?file\s+(?:named\s+|called\s+)?(?<path>[\w./-]+)(?:\s+(?:with|containing|saying)\s+(?:the\s+)?(?:text\s+|content\s+)?(?<content>.+))?$/i,
    ],
    paramsFromPhrase: (g) => ({ path: g.path, content: unquote(g.content) ?? "" }),
  },
  {
    name: "read_file",
    risk: "READ_ONLY",
    capability: "fs",
    description: "Read a file inside the workspace",
    defaultTimeoutS: 30,
    phrases: [
      /\b(?:read|cat|open|print|show)\s+(?:me\s+)?(?:the\s+)?file\s+(?<path>[^\s,;]+)/i,
      /\b(?:read|cat|open|print|show)\s+(?:me\s+)?(?:the\s+)?(?<path>[\w./-]*\.[\w-]+)\b/i,
    ],
    paramsFromPhrase: (g) => ({ path: g.path }),
  },
  {
    name: "list_files",
    risk: "READ_ONLY",
    capability: "fs",
    description: "List files in the workspace",
    defaultTimeoutS: 30,
    phrases: [/\b(?:list|show)\s+(?:all\s+|the\s+)*files\b/i, /\bls\b/i, /\bdirectory\s+(?:listing|tree)\b/i],
  },
  {
    name: "search_code",
    risk: "READ_ONLY",
    capability: "fs",
    description: "Search the workspace's files for a text pattern",
    defaultTimeoutS: 60,
    phrases: [
      /\b(?:search|grep)\s+(?:the\s+)?(?:code\s+|codebase\s+|repo\s+)?for\s+(?<pattern>.+?)$/i,
      /\b(?:find|grep)\s+(?:usages?\s+of\s+)?["'`](?<pattern>[^"'`]+)["'`]/i,
    ],
    paramsFromPhrase: (g) => ({ pattern: unquote(g.pattern) }),
  },
  {
    name: "lint",
    risk: "WRITE",
    capability: "runner",
    description: "Run the project's linter",
    defaultTimeoutS: 600,
    phrases: [/\blint(?:er|ing)?\b/i],
  },
  {
    name: "install_deps",
    risk: "WRITE",
    capability: "runner",
    description: "Install the project's dependencies",
    defaultTimeoutS: 1200,
    phrases: [/\binstall\s+(?:the\s+)?(?:dependencies|deps|packages)\b/i, /\bnpm\s+(?:ci|install)\b/i],
  },
  {
    name: "run_tests",
    risk: "WRITE",
    capability: "runner",
    description: "Run the project's tests with the runner detected from the workspace",
    defaultTimeoutS: 1800,
    phrases: [/\b(?:run|execute)\s+(?:all\s+|the\s+|unit\s+|my\s+)*tests?\b/i, /\btest\s+suite\b/i, /^\s*tests?\s*$/i],
  },
  {
    name: "build_project",
    risk: "WRITE",
    capability: "runner",
    description: "Build the project with the tool detected from the workspace",
    defaultTimeoutS: 1800,
    phrases: [/\bbuild\b/i, /\bcompile\b/i],
  },
  {
    name: "git_commit",
    risk: "WRITE",
    capability: "git",
    description: "Commit the workspace's changes",
    defaultTimeoutS: 60,
    phrases: [/\bcommit\b(?:.*?\b(?:message|saying)\s+(?<message>.+))?$/i],
    paramsFromPhrase: (g) => ({ message: unquote(g.message) ?? "Commit by SKYNET" }),
  },
  {
    name: "git_push",
    risk: "ADMIN",
    capability: "git",
    description: "Push the current branch to its remote",
    defaultTimeoutS: 300,
    phrases: [/\bpush\b/i],
  },
];

const BY_NAME = new Map(ACTION_CATALOG.map((a) => [a.name, a]));

export function getAction(name: string): ActionDefinition | undefined {
  return BY_NAME.get(name as ActionName);
}

export type ParamsCheck = Result<{ action: ActionDefinition; params: JsonObject }>;

/** Validates an action name and its params against the catalog; defaults are filled in. */
export function checkActionParams(name: string, params: unknown): ParamsCheck {
  const action = getAction(name);
  if (!action) return err(`unknown action "${name}"`);
  const parsed = ActionParamsSchemas[action.name].safeParse(params ?? {});
  if (!parsed.success) {
    return err(`invalid params for ${action.name}: ${describeIssues(parsed.error, { root: "params", max: 10 })}`);
  }
  // Every params schema is built from JSON types (strings, numbers, booleans, arrays, objects).
  return ok({ action, params: parsed.data as JsonObject });
}

export type PhraseMatch = { action: ActionDefinition; params: Record<string, string | string[] | undefined> };

/** The first catalog action whose phrase matches the text, with params taken from the phrase. */
export function matchPhrase(text: string): PhraseMatch | undefined {
  for (const action of ACTION_CATALOG) {
    for (const phrase of action.phrases) {
      const m = phrase.exec(text);
      if (m) return { action, params: action.paramsFromPhrase?.(m.groups ?? {}) ?? {} };
    }
  }
  return undefined;
}
