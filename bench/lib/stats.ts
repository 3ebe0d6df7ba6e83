// Small helpers shared by the bench parts: percentiles, rounding, bounded concurrency.

export function pct(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}

export const round = (n: number, d = 1): number => Math.round(n * 10 ** d) / 10 ** d;

export function p50p99(values: number[]): { p50Ms: number; p99Ms: number; n: number } {
  return { p50Ms: round(pct(values, 50)), p99Ms: round(pct(values, 99)), n: values.length };
}

export async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i] as T, i);
      }
    }),
  );
  return out;
}

export const say = (m: string): void => {
  process.stderr.write(`[bench] ${m}\n`);
};
