// Types for count.mjs (plain JavaScript so CI can run it with any Node), for its test.
export declare const MINIMUM_TESTS: Record<string, number>;
export declare function projectOf(file: string): "worker" | "agent" | "e2e";
export declare function count(
  report: unknown,
  opts?: { steps?: Record<string, number>; minimums?: Record<string, number> },
): { passed: number; failed: number; lines: string[] };
