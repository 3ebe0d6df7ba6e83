// Artifact uploads (HTTP PUT through the Worker to R2), kept by the agent until they are stored:
// a failure that may pass (network error, 5xx, 408, 429, a timeout) is retried with backoff for
// up to `retryForMs`, across reconnects and Worker restarts (a PUT of the same name is
// idempotent); a refusal that will not pass (another 4xx, e.g. 403 when the lease is over) ends
// it at once. Either way the caller gets the reason, so the job can say what was not stored.
import { createHash } from "node:crypto";
import type { ArtifactRef } from "../../protocol/index.ts";
import { retryDelay, sleep } from "./backoff.ts";
import type { AgentConfig } from "./config.ts";

export interface UploadPolicy {
  /** How long after the first try to keep retrying (the bound on a journaled upload). */
  retryForMs: number;
  baseMs: number;
  maxMs: number;
  /** One try's limit (a stopped server must not hold the upload forever). */
  tryTimeoutMs: number;
}

export const DEFAULT_UPLOAD_POLICY: UploadPolicy = {
  retryForMs: 10 * 60_000,
  baseMs: 250,
  maxMs: 5_000,
  tryTimeoutMs: 60_000,
};

export type UploadOutcome =
  | { ok: true; ref: ArtifactRef; tries: number }
  | { ok: false; reason: string; tries: number };

export interface UploadTarget {
  jobId: string;
  attempt: number;
  leaseToken: string;
  /** True once the server said this attempt is stale: retrying is pointless. */
  readonly fenced: boolean;
}

/** Statuses that may pass by themselves; every other 4xx is the server's final word. */
const TRANSIENT = new Set([408, 425, 429]);

export async function uploadArtifact(
  config: Pick<AgentConfig, "serverUrl" | "token">,
  job: UploadTarget,
  artifact: { name: string; body: Buffer; stepId: string },
  opts: { policy: UploadPolicy; giveUp?: AbortSignal; say?: (line: string) => void },
): Promise<UploadOutcome> {
  const { name, body, stepId } = artifact;
  const say = opts.say ?? (() => undefined);
  const sha256 = createHash("sha256").update(body).digest("hex");
  const url = `${config.serverUrl}/agent/jobs/${job.jobId}/artifacts/${encodeURIComponent(name)}`;
  const started = Date.now();
  let lastError = "";
  for (let tries = 1; ; tries++) {
    if (job.fenced) return { ok: false, reason: "the server ended this attempt before it was stored", tries };
    if (opts.giveUp?.aborted) return { ok: false, reason: "the agent stopped before it was stored", tries };
    try {
      const res = await fetch(url, {
        method: "PUT",
        headers: {
          Authorization: `Bearer ${config.token}`,
          "Content-Type": "text/plain; charset=utf-8",
          "Content-Length": String(body.length),
          "X-Skynet-Attempt": String(job.attempt),
          "X-Skynet-Lease": job.leaseToken,
          "X-Skynet-Sha256": sha256,
        },
        body: new Uint8Array(body),
        signal: AbortSignal.timeout(opts.policy.tryTimeoutMs),
      });
      const text = res.status === 201 ? "" : (await res.text().catch(() => "")).slice(0, 200);
      if (res.status === 201) {
        if (tries > 1) say(`artifact ${name} stored after ${tries} tries`);
        return {
          ok: true,
          ref: { name, size: body.length, sha256, contentType: "text/plain; charset=utf-8", stepId },
          tries,
        };
      }
      if (res.status >= 400 && res.status < 500 && !TRANSIENT.has(res.status)) {
        const why =
          res.status === 403 ? "the server refused it: this attempt's lease is over" : "the server refused it";
        say(`artifact ${name} upload refused: ${res.status} ${text}`);
        return { ok: false, reason: `${why} (${res.status} ${text})`.slice(0, 500), tries };
      }
      lastError = `${res.status} ${text}`.trim();
    } catch (err) {
      lastError = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
    }
    const delay = retryDelay(tries - 1, opts.policy.baseMs, opts.policy.maxMs);
    if (Date.now() + delay - started > opts.policy.retryForMs) {
      const spent = Math.round((Date.now() - started) / 1000);
      say(`artifact ${name} not stored after ${tries} tries: ${lastError}`);
      return {
        ok: false,
        reason: `upload failed ${tries} times over ${spent}s (last: ${lastError})`.slice(0, 500),
        tries,
      };
    }
    if (tries === 1) say(`artifact ${name} upload failed (${lastError}); retrying`);
    await sleep(delay, opts.giveUp);
  }
}
