// Reading one clause of what a person typed: the phrasings the catalog's own phrases miss (a
// path after "in", a branch after "push to", a count, a "since"), and the refusals that keep a
// clause from mapping to an action that contradicts it ("delete the build folder" is not a build,
// "don't push" is not a push). The catalog's phrases are the fallback.
import { ACTION_CATALOG, type ActionName } from "../../protocol/index.ts";
import type { ClauseReading } from "./clause.ts";
import { RULES, step } from "./phrasings.ts";

/**
 * `sure`: the whole clause was read (an anchored phrasing, or a catalog phrase with only filler
 * words around it). A plan made only of sure steps needs no model call; others are Claude's to
 * read when a key is set, and the rule reading is the offline fallback.
 */
/** Actions whose phrase captures free text to the end of the clause (a command, file content). */
export const FREE_TEXT_ACTIONS = new Set<string>([
  "run_command",
  "write_file",
  "search_code",
  "git_commit",
  "code_task",
]);

const POLITE =
  /^(?:(?:please|pls|now|also|first|finally|next|then|and|ok(?:ay)?|hey|so|just|go\s+ahead\s+and|i\s+(?:want|need)\s+(?:you\s+)?to|i'd\s+like\s+(?:you\s+)?to|(?:can|could|would|will)\s+you(?:\s+please)?|skynet)[\s,]+)+/i;

export function stripPolite(clause: string): string {
  return clause
    .trim()
    .replace(POLITE, "")
    .replace(/[\s,]+(?:please|pls|for\s+me|thanks|thank\s+you)$/i, "")
    .replace(/[.!?]+$/, "")
    .trim();
}

const NEGATION = /\b(?:don'?t|do\s+not|never|not|without|skip(?:ping)?|avoid|except|no\s+need\s+to|stop)\b/i;

/** Verbs no catalog action performs; a clause led by one is refused, never mapped to a neighbour. */
const UNSUPPORTED_VERBS: Record<string, string> = {
  delete: "deletes",
  remove: "removes",
  rm: "removes",
  erase: "erases",
  wipe: "wipes",
  clean: "cleans",
  clear: "clears",
  purge: "purges",
  drop: "drops",
  destroy: "destroys",
  uninstall: "uninstalls",
  undo: "undoes",
  revert: "reverts",
  reset: "resets",
  unstage: "unstages",
  discard: "discards",
  stash: "stashes",
  kill: "kills",
  cancel: "cancels",
  abort: "aborts",
  pull: "pulls",
  fetch: "fetches",
  merge: "merges",
  rebase: "rebases",
  checkout: "checks out",
  switch: "switches branches",
  rename: "renames",
  move: "moves",
  mv: "moves",
  copy: "copies",
  deploy: "deploys",
  publish: "publishes",
  release: "releases",
  amend: "amends",
  squash: "squashes",
  tag: "tags",
  upgrade: "upgrades",
  update: "updates",
  downgrade: "downgrades",
  edit: "edits",
  fix: "fixes",
  refactor: "refactors",
  format: "formats",
};

function refusalForVerb(clause: string): ClauseReading | undefined {
  const verb = /^([a-z]+)\b/i.exec(clause)?.[1]?.toLowerCase();
  if (verb && UNSUPPORTED_VERBS[verb]) {
    return {
      kind: "refuse",
      reason: `"${clause}": none of my actions ${UNSUPPORTED_VERBS[verb]} anything, so I planned nothing rather than something else`,
    };
  }
  if (/\bforce[\s-]*push|\bpush\b.*(?:--force|-f\b|\bforce)/i.test(clause)) {
    return { kind: "refuse", reason: `"${clause}": I never force-push; a plain push is not what you asked for` };
  }
  return undefined;
}

/** Where the free text of a catalog phrase starts, so negation words inside it are not read. */
function catalogMatch(
  clause: string,
): { action: ActionName; groups: Record<string, string | undefined>; textStart: number; rest: string } | undefined {
  for (const action of ACTION_CATALOG) {
    for (const phrase of action.phrases) {
      const m = new RegExp(phrase.source, `${phrase.flags}d`).exec(clause);
      if (!m) continue;
      const starts = Object.values(m.indices?.groups ?? {}).flatMap((r) => (r ? [r[0]] : []));
      return {
        action: action.name,
        groups: m.groups ?? {},
        textStart: starts.length ? Math.min(...starts) : clause.length,
        rest: `${clause.slice(0, m.index)} ${clause.slice(m.index + m[0].length)}`,
      };
    }
  }
  return undefined;
}

/** Words around a catalog phrase that add nothing to it ("check git status in my project"). */
const FILLER = new Set(
  "check show me the a an my our this current all run do get see view display give tell in of on for project code codebase repo repository workspace here now please it".split(
    " ",
  ),
);

/** "build" as a noun (the build folder, the build log) is not a request to build. */
const BUILD_NOUN = /\bbuild\s+(?:folder|dir|directory|output|logs?|files?|artifacts?|script|cache|status)\b/i;

export function readClause(raw: string): ClauseReading {
  const clause = stripPolite(raw);
  if (!clause) return { kind: "none" };
  const catalog = catalogMatch(clause);
  const refused = refusalForVerb(clause);
  if (refused) return catalog && refused.kind === "refuse" ? { ...refused, forbids: catalog.action } : refused;
  const head = catalog && FREE_TEXT_ACTIONS.has(catalog.action) ? clause.slice(0, catalog.textStart) : clause;
  const negation = NEGATION.exec(head);
  if (negation) {
    const negated = catalogMatch(clause.slice(negation.index))?.action;
    return {
      kind: "refuse",
      reason: `"${clause}" says "${negation[0]}"; I only plan what you ask me to do, so leave that part out`,
      ...(negated ? { forbids: negated } : {}),
    };
  }
  // An explicit command or a coder's instruction is taken verbatim by the catalog's phrase, never re-read.
  for (const rule of catalog?.action === "run_command" || catalog?.action === "code_task" ? [] : RULES) {
    const m = rule.re.exec(clause);
    const read = m ? rule.read(m.groups ?? {}) : undefined;
    if (read) return read;
  }
  if (!catalog) return { kind: "none" };
  if (catalog.action === "build_project" && BUILD_NOUN.test(clause)) return { kind: "none" };
  const def = ACTION_CATALOG.find((a) => a.name === catalog.action);
  const sure = catalog.rest.split(/[\s,]+/).every((w) => w === "" || FILLER.has(w.toLowerCase()));
  return { ...step(catalog.action, def?.paramsFromPhrase?.(catalog.groups) ?? {}), sure } as ClauseReading;
}
