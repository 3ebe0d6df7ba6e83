// CPU time of the local workerd processes (the Worker and its Durable Objects run there): utime +
// stime from /proc/<pid>/stat of every workerd process descended from this bench process.
import { readdir, readFile } from "node:fs/promises";

interface Proc {
  pid: number;
  ppid: number;
  comm: string;
  cpuTicks: number;
}

async function readProc(pid: number): Promise<Proc | null> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  if (!stat) return null;
  // comm is in parentheses and may hold spaces: the fields after it are space-separated.
  const close = stat.lastIndexOf(")");
  const comm = stat.slice(stat.indexOf("(") + 1, close);
  const f = stat
    .slice(close + 2)
    .split(" ")
    .map(Number);
  // After comm: state(0) ppid(1) … utime(11) stime(12).
  return { pid, ppid: f[1] ?? 0, comm, cpuTicks: (f[11] ?? 0) + (f[12] ?? 0) };
}

/** Clock ticks per second of /proc's utime/stime (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/** CPU milliseconds used so far by one process; null when its /proc entry cannot be read. */
export async function processCpuMs(pid: number | undefined): Promise<number | null> {
  const p = pid === undefined ? null : await readProc(pid);
  return p ? (p.cpuTicks * 1000) / USER_HZ : null;
}

/**
 * CPU milliseconds of the given processes, sampled every `everyMs` until stopped: `at(t)` reads
 * the use up to wall time t (ms since the epoch), from the last sample before it; null unknown.
 */
export function cpuSampler(pids: readonly number[], everyMs = 20) {
  const samples: { t: number; ms: number }[] = [];
  let stopped = false;
  const take = async () => {
    // No process to read (off Linux, or no pid): no sample, so the figure reads as unknown.
    if (pids.length === 0) return;
    const each = await Promise.all(pids.map((p) => processCpuMs(p)));
    if (each.some((v) => v === null)) return;
    samples.push({ t: Date.now(), ms: (each as number[]).reduce((a, b) => a + b, 0) });
  };
  const loop = (async () => {
    while (!stopped) {
      await take();
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    async stop(): Promise<void> {
      stopped = true;
      await loop;
    },
    at(t: number): number | null {
      let found: number | null = null;
      for (const s of samples) if (s.t <= t) found = s.ms;
      return found;
    },
  };
}

/** The workerd processes under this process (the Worker and its Durable Objects run there). */
export async function workerdPids(root = process.pid): Promise<number[]> {
  const pids = await readdir("/proc").catch(() => null);
  if (!pids) return [];
  const procs = (await Promise.all(pids.filter((p) => /^\d+$/.test(p)).map((p) => readProc(Number(p))))).filter(
    (p): p is Proc => p !== null,
  );
  const children = new Map<number, Proc[]>();
  for (const p of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const found: number[] = [];
  const stack = [...(children.get(root) ?? [])];
  while (stack.length) {
    const p = stack.pop() as Proc;
    if (p.comm === "workerd") found.push(p.pid);
    stack.push(...(children.get(p.pid) ?? []));
  }
  return found;
}

/** CPU milliseconds used so far by the workerd processes under this process; null off Linux. */
export async function workerdCpuMs(root = process.pid): Promise<number | null> {
  const each = await Promise.all((await workerdPids(root)).map((p) => processCpuMs(p)));
  const known = each.filter((ms): ms is number => ms !== null);
  return known.length === 0 ? null : known.reduce((a, b) => a + b, 0);
}
