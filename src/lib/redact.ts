// Redaction of the deployment's own secrets (API_TOKEN, TELEGRAM_BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET,
// ANTHROPIC_API_KEY) from anything stored or shown: job logs, chat messages, API output. A plan can
// read a file that holds them (e.g. .dev.vars); whatever it prints must not carry them out.

export interface Secret {
  name: string;
  value: string;
}

export interface Span {
  start: number;
  end: number;
  name: string;
}

/** Shorter values are too likely to occur by chance to be worth replacing. */
export const MIN_SECRET_LENGTH = 8;

const SECRET_VARS = ["API_TOKEN", "TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "ANTHROPIC_API_KEY"] as const;

export const marker = (name: string): string => `[redacted ${name}]`;

export function deploymentSecrets(env: Env): Secret[] {
  const e = env as unknown as Partial<Record<string, unknown>>;
  const out: Secret[] = [];
  for (const name of SECRET_VARS) {
    const value = e[name];
    if (typeof value !== "string" || value.trim().length < MIN_SECRET_LENGTH) continue;
    out.push({ name, value: value.trim() });
    // A bot token is "<bot id>:<secret>"; the part after the colon is the secret on its own.
    const colon = value.indexOf(":");
    if (name === "TELEGRAM_BOT_TOKEN" && colon > 0 && value.length - colon - 1 >= MIN_SECRET_LENGTH) {
      out.push({ name, value: value.trim().slice(colon + 1) });
    }
  }
  return out;
}

/**
 * A value the text is scanned for, and the secrets found through it: each holds it at `offset`
 * (a bot token holds its secret half), so where the anchor occurs is where they can start.
 */
interface Anchor {
  value: string;
  members: { index: number; offset: number }[];
}

export class Redactor {
  private readonly secrets: Secret[];
  /** Length of the longest secret: a carry-over of one less catches one split across chunks. */
  readonly longest: number;
  /** One scan of the text per anchor, not per secret. */
  private readonly anchors: Anchor[];

  constructor(secrets: Secret[]) {
    // Longest first, so a whole bot token wins over its secret half.
    this.secrets = [...secrets].sort((a, b) => b.value.length - a.value.length);
    this.longest = this.secrets[0]?.value.length ?? 0;
    const anchors = new Map<string, Anchor>();
    this.secrets.forEach((s, index) => {
      // The shortest secret inside this one (itself, if none is): the last in longest-first order.
      const inner = this.secrets.findLast((t) => s.value.includes(t.value)) ?? s;
      let anchor = anchors.get(inner.value);
      if (!anchor) {
        anchor = { value: inner.value, members: [] };
        anchors.set(inner.value, anchor);
      }
      anchor.members.push({ index, offset: s.value.indexOf(inner.value) });
    });
    this.anchors = [...anchors.values()];
  }

  get empty(): boolean {
    return this.secrets.length === 0;
  }

  /**
   * Non-overlapping occurrences of any secret, in order: the longer secret first where two
   * overlap, then the earlier occurrence. The text is scanned once per anchor.
   */
  spans(text: string): Span[] {
    const hits: { index: number; start: number }[] = [];
    for (const a of this.anchors) {
      for (let i = text.indexOf(a.value); i >= 0; i = text.indexOf(a.value, i + 1)) {
        for (const m of a.members) {
          const start = i - m.offset;
          if (start >= 0 && text.startsWith((this.secrets[m.index] as Secret).value, start))
            hits.push({ index: m.index, start });
        }
      }
    }
    if (hits.length === 0) return [];
    hits.sort((x, y) => x.index - y.index || x.start - y.start);
    const found: Span[] = [];
    for (const h of hits) {
      const s = this.secrets[h.index] as Secret;
      const end = h.start + s.value.length;
      if (!found.some((f) => h.start < f.end && end > f.start)) found.push({ start: h.start, end, name: s.name });
    }
    return found.sort((a, b) => a.start - b.start);
  }

  redact(text: string): string {
    if (this.empty || text.length < MIN_SECRET_LENGTH) return text;
    const spans = this.spans(text);
    if (spans.length === 0) return text;
    let out = "";
    let at = 0;
    for (const s of spans) {
      out += text.slice(at, s.start) + marker(s.name);
      at = s.end;
    }
    return out + text.slice(at);
  }

  /**
   * Whether any occurrence of a secret starts before `at` and ends after it, whatever overlaps
   * spans() would drop: a cheap, never-missing test for a secret split at `at`.
   */
  crosses(text: string, at: number): boolean {
    return this.secrets.some((s) => {
      const i = text.indexOf(s.value, Math.max(0, at - s.value.length + 1));
      return i >= 0 && i < at;
    });
  }

  /** How many trailing characters of `text` could be the start of a secret (to hold back). */
  pendingPrefix(text: string): number {
    for (let n = Math.min(this.longest - 1, text.length); n > 0; n--) {
      const tail = text.slice(text.length - n);
      if (this.secrets.some((s) => s.value.startsWith(tail))) return n;
    }
    return 0;
  }
}

// Every JSON response and chat message asks for the redactor; the env (hence its secrets) is the
// same object for an isolate's or a Durable Object's life, so one redactor per env is kept.
const redactors = new WeakMap<object, Redactor>();

export function redactorFor(env: Env): Redactor {
  let r = redactors.get(env);
  if (!r) {
    r = new Redactor(deploymentSecrets(env));
    redactors.set(env, r);
  }
  return r;
}
