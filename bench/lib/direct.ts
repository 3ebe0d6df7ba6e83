// The direct-spawn limit, measured in the same run as the jobs: the command a job runs, spawned by
// this process with no SKYNET in between (the floor every overhead and ratio is taken against).
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** One spawn of `argv` in `cwd`, in milliseconds. */
async function once(argv: string[], cwd: string): Promise<number> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error("empty argv");
  const t = performance.now();
  await run(cmd, args, { cwd });
  return performance.now() - t;
}

/** Sequential spawns: the latency of the command itself. */
export async function directLatency(argv: string[], cwd: string, runs: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await once(argv, cwd));
  return times;
}

/**
 * `loops` loops spawning `argv(i)` in parallel until `total` spawns ran (each loop in its own
 * directory, as each agent has its own workspace): spawns per second.
 */
export async function directThroughput(
  argv: (i: number) => string[],
  dirs: string[],
  total: number,
): Promise<{ spawns: number; seconds: number; perSecond: number }> {
  let next = 0;
  const t = performance.now();
  await Promise.all(
    dirs.map(async (dir) => {
      while (next < total) await once(argv(next++), dir);
    }),
  );
  const seconds = (performance.now() - t) / 1000;
  return { spawns: total, seconds, perSecond: total / seconds };
}
