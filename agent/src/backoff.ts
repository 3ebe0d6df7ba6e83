// Retry delays for reconnects and artifact uploads: exponential with "equal jitter" (half the
// ceiling fixed, half random), so the delay grows yet agents that lost the server together do not
// come back in lockstep, and it never exceeds the cap. The cap is what bounds how long after an
// outage ends the agent is back: it must stay well below the server's reconnect grace.

/** Delay before retry number `failures` (0 = the first retry after a healthy connection). */
export function retryDelay(
  failures: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(failures, 30));
  return Math.max(10, Math.round(ceiling / 2 + random() * (ceiling / 2)));
}

/** Sleeps for ms, or less if the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
