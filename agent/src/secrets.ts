// Secret files: which workspace paths the catalog actions may not read, list, search or write, and
// redaction of the agent's own tokens from everything that leaves a step (log frames, errors,
// artifacts). A running test or build script can still read what it likes: that is WRITE, and
// approved; this guards the READ_ONLY actions a plan can run without anyone looking.
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * Denied by default. A pattern without '/' matches any one path segment (a file or a directory
 * anywhere, and everything under that directory); one with '/' matches consecutive segments.
 * '*' stays within a segment, '**' crosses segments; matching ignores case (macOS, Windows).
 */
export const DEFAULT_SECRET_GLOBS: readonly string[] = [
  // Environment and deployment secrets (wrangler's local vars and state, SKYNET's own files).
  ".env*",
  ".dev.vars*",
  ".wrangler",
  ".skynet",
  ".config/skynet",
  // Private keys and keystores.
  "id_rsa*",
  "id_dsa*",
  "id_ecdsa*",
  "id_ed25519*",
  "*.pem",
  "*.key",
  "*.p12",
  "*.pfx",
  "*.jks",
  "*.keystore",
  "*.ppk",
  ".ssh",
  ".gnupg",
  // Package registry, network and git credentials.
  ".npmrc",
  ".yarnrc.yml",
  ".pypirc",
  ".netrc",
  "_netrc",
  ".git-credentials",
  // Remote URLs with embedded tokens, http.extraHeader (CI checkouts keep a bearer token there).
  ".git/config",
  ".pgpass",
  ".cargo/credentials*",
  ".gem/credentials",
  ".config/gh/hosts.yml",
  // Cloud and cluster credentials.
  ".aws",
  ".azure",
  ".config/gcloud",
  ".docker/config.json",
  ".kube/config",
  ".terraformrc",
  "*.tfstate*",
];

export interface PathPolicy {
  /** Extra patterns to deny, on top of the defaults. */
  deny: readonly string[];
  /** Patterns that lift a default (or extra) deny, e.g. ".env.example". */
  allow: readonly string[];
}

export const EMPTY_POLICY: PathPolicy = { deny: [], allow: [] };

function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === "*" && glob[i + 1] === "*") {
      re += ".*";
      i += 1;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "i");
}

const cache = new Map<string, RegExp>();
const compiled = (glob: string) => {
  let re = cache.get(glob);
  if (!re) {
    re = globToRegExp(glob.replace(/^\/+|\/+$/g, ""));
    cache.set(glob, re);
  }
  return re;
};

/** The first pattern matching the path or one of its ancestor directories. */
function firstMatch(relPath: string, globs: readonly string[]): string | undefined {
  const segments = relPath.split(/[\\/]+/).filter((s) => s !== "" && s !== ".");
  for (const glob of globs) {
    const re = compiled(glob);
    for (let i = 0; i < segments.length; i++) {
      for (let j = i + 1; j <= segments.length; j++) {
        if (re.test(segments.slice(i, j).join("/"))) return glob;
      }
    }
  }
  return undefined;
}

/** Why this workspace-relative path is off limits, or null when it is not. */
export function secretReason(relPath: string, policy: PathPolicy = EMPTY_POLICY): string | null {
  const denied = firstMatch(relPath, [...DEFAULT_SECRET_GLOBS, ...policy.deny]);
  if (!denied) return null;
  if (policy.allow.length > 0 && firstMatch(relPath, policy.allow)) return null;
  return `"${relPath}" is a secret file (matches "${denied}"); the agent does not read, list, search or write it`;
}

/** git pathspecs that keep denied files out of a diff or out of `git add -A`. */
export function secretPathspecs(policy: PathPolicy = EMPTY_POLICY): string[] {
  const out: string[] = [];
  for (const glob of [...DEFAULT_SECRET_GLOBS, ...policy.deny]) {
    const g = glob.replace(/^\/+|\/+$/g, "");
    out.push(`:(exclude,glob,icase)**/${g}`, `:(exclude,glob,icase)**/${g}/**`);
  }
  return out;
}

/** Absolute files no action may touch whatever the workspace: the agent's config, git's global config. */
export function protectedFiles(agentConfigPath?: string): string[] {
  const home = homedir();
  const xdg = process.env.XDG_CONFIG_HOME || join(home, ".config");
  return [
    ...(agentConfigPath ? [agentConfigPath] : []),
    join(xdg, "skynet", "agent.json"),
    join(home, ".gitconfig"),
    join(xdg, "git", "config"),
  ];
}

/**
 * Replaces the given secrets in a byte stream with "[redacted]". Only a chunk's tail that could be
 * the start of a secret is held back (until the next chunk of the stream or the end), so a
 * secret split across two chunks is still caught and ordinary output is never delayed.
 */
export class Redactor {
  private readonly needles: Buffer[];
  private tail: Buffer = Buffer.alloc(0);

  constructor(secrets: readonly (string | undefined)[]) {
    this.needles = [...new Set(secrets.filter((s): s is string => !!s && s.length >= 8))].map((s) => Buffer.from(s));
  }

  get active(): boolean {
    return this.needles.length > 0;
  }

  /** The redacted bytes that are safe to emit now. */
  push(chunk: Buffer): Buffer {
    if (!this.active) return chunk;
    const text = this.replace(this.tail.length > 0 ? Buffer.concat([this.tail, chunk]) : chunk);
    const cut = text.length - this.partialSuffix(text);
    this.tail = Buffer.from(text.subarray(cut));
    return text.subarray(0, cut);
  }

  /** The length of the longest tail of text that is a proper prefix of a secret. */
  private partialSuffix(text: Buffer): number {
    let best = 0;
    for (const needle of this.needles) {
      for (let at = Math.max(0, text.length - needle.length + 1); at < text.length; at++) {
        const len = text.length - at;
        if (len <= best) break;
        if (text[at] === needle[0] && text.subarray(at).equals(needle.subarray(0, len))) {
          best = len;
          break;
        }
      }
    }
    return best;
  }

  /** Whatever is held back, at the end of the stream. */
  flush(): Buffer {
    const rest = this.tail;
    this.tail = Buffer.alloc(0);
    return rest;
  }

  /** Redacts a complete buffer (an artifact, an error message). */
  all(data: Buffer): Buffer {
    return this.active ? this.replace(data) : data;
  }

  text(s: string): string {
    return this.active ? this.all(Buffer.from(s)).toString() : s;
  }

  private replace(data: Buffer): Buffer {
    let out: Buffer = data;
    const mark = Buffer.from("[redacted]");
    for (const needle of this.needles) {
      const parts: Buffer[] = [];
      let from = 0;
      for (let at = out.indexOf(needle); at >= 0; at = out.indexOf(needle, from)) {
        parts.push(out.subarray(from, at), mark);
        from = at + needle.length;
      }
      if (parts.length === 0) continue;
      parts.push(out.subarray(from));
      out = Buffer.concat(parts);
    }
    return out;
  }
}
