// One Messages API call made sturdy: retries with backoff on 429/5xx/529 (honouring retry-after)
// inside one deadline, errors told as a sentence a person can read (never the API's JSON), and
// every answered call's tokens added to a tally. Shared by the planner and the answer writer.
import Anthropic from "@anthropic-ai/sdk";

import { err, ok, type Result, type TokenTally } from "../../protocol/index.ts";

export type { TokenTally } from "../../protocol/index.ts";

export const emptyTally = (): TokenTally => ({ calls: 0, input: 0, cachedInput: 0, cacheWrite: 0, output: 0 });

export function addTallies(a: TokenTally | null | undefined, b: TokenTally): TokenTally {
  const t = a ?? emptyTally();
  return {
    calls: t.calls + b.calls,
    input: t.input + b.input,
    cachedInput: t.cachedInput + b.cachedInput,
    cacheWrite: t.cacheWrite + b.cacheWrite,
    output: t.output + b.output,
  };
}

export function addUsage(tally: TokenTally, usage: Partial<Anthropic.Usage> | undefined): void {
  tally.calls += 1;
  const n = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? Math.floor(v) : 0);
  tally.input += n(usage?.input_tokens);
  tally.cachedInput += n(usage?.cache_read_input_tokens);
  tally.cacheWrite += n(usage?.cache_creation_input_tokens);
  tally.output += n(usage?.output_tokens);
}

export interface ModelFailure {
  text: string;
  /** The API is down, overloaded, rate-limiting or slow — not a fault of the request. */
  unavailable: boolean;
}
export type ModelCallResult = Result<Anthropic.Message, ModelFailure>;

export interface ModelCallOptions {
  deadline: number;
  signal: AbortSignal;
  tally: TokenTally;
  /** Attempts in all (first call included). */
  maxAttempts?: number;
  /** The longest wait between attempts the caller accepts, whatever retry-after says. */
  maxWaitMs?: number;
}

const RETRYABLE = (status: number): boolean => status === 429 || status === 408 || status >= 500;

/**
 * Why the call failed, as a short phrase a person can read ("overloaded (529)"); the API's own
 * message is quoted only for a refused request, made printable. `unavailable`: the model could
 * not be used at all (any API or network failure), as opposed to an answer we could not use.
 */
export function describeModelError(err: unknown, timedOut: boolean): { text: string; unavailable: boolean } {
  if (timedOut || err instanceof Anthropic.APIConnectionTimeoutError)
    return { text: "no answer in time", unavailable: true };
  if (err instanceof Anthropic.APIUserAbortError) return { text: "the request was cancelled", unavailable: true };
  if (err instanceof Anthropic.APIConnectionError) return { text: "the API could not be reached", unavailable: true };
  if (err instanceof Anthropic.APIError) {
    const status = err.status ?? 0;
    if (status === 529) return { text: "overloaded (529)", unavailable: true };
    if (status === 429) return { text: "rate limit reached (429)", unavailable: true };
    if (status >= 500) return { text: `internal error (${status})`, unavailable: true };
    if (status === 401 || status === 403) {
      return { text: `the API key was refused (${status}); check ANTHROPIC_API_KEY`, unavailable: true };
    }
    const said = readable(err.apiMessage ?? "");
    return { text: `the request was refused (${status})${said ? `: ${said}` : ""}`, unavailable: true };
  }
  return { text: readable(err instanceof Error ? err.message : String(err)) || "unknown error", unavailable: false };
}

/** Printable, key-free, short: an API message is outside input too. */
function readable(text: string): string {
  return text
    .replace(/sk-[A-Za-z0-9_-]+/g, "[key]")
    .replace(/[^\P{C}]+/gu, " ")
    .replace(/[{}"\\]/g, "")
    .trim()
    .slice(0, 200);
}

function retryAfterMs(err: unknown): number | undefined {
  if (!(err instanceof Anthropic.APIError)) return undefined;
  const raw = err.headers?.get("retry-after");
  if (!raw) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });

export async function callModel(
  client: Anthropic,
  params: Anthropic.MessageCreateParamsNonStreaming,
  opts: ModelCallOptions,
): Promise<ModelCallResult> {
  const attempts = opts.maxAttempts ?? 3;
  let last: ModelFailure = { text: "no answer in time", unavailable: true };
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const remaining = opts.deadline - Date.now();
    if (remaining <= 0 || opts.signal.aborted) return err({ text: last.text, unavailable: true });
    try {
      const message = await client.messages.create(params, { timeout: remaining, signal: opts.signal, maxRetries: 0 });
      addUsage(opts.tally, message.usage);
      return ok(message);
    } catch (err) {
      last = describeModelError(err, opts.signal.aborted || Date.now() >= opts.deadline);
      const status = err instanceof Anthropic.APIError ? (err.status ?? 0) : 0;
      const retryable = err instanceof Anthropic.APIConnectionError ? !opts.signal.aborted : RETRYABLE(status);
      if (!retryable || attempt === attempts) break;
      // retry-after when the API gives one, else exponential backoff with jitter.
      const wait = retryAfterMs(err) ?? 500 * 2 ** (attempt - 1) * (0.75 + Math.random() / 2);
      if (wait > (opts.maxWaitMs ?? 10_000) || Date.now() + wait >= opts.deadline) break;
      await sleep(wait, opts.signal);
    }
  }
  return err({ text: last.text, unavailable: last.unavailable });
}
