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

/** CPU milliseconds used so far by the workerd processes under this process; null off Linux. */
export async function workerdCpuMs(root = process.pid): Promise<number | null> {
  const pids = await readdir("/proc").catch(() => null);
  if (!pids) return null;
  const procs = (await Promise.all(pids.filter((p) => /^\d+$/.test(p)).map((p) => readProc(Number(p))))).filter(
    (p): p is Proc => p !== null,
  );
  const children = new Map<number, Proc[]>();
  for (const p of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  let ticks = 0;
  let found = false;
  const stack = [...(children.get(root) ?? [])];
  while (stack.length) {
    const p = stack.pop() as Proc;
    if (p.comm === "workerd") {
      ticks += p.cpuTicks;
      found = true;
    }
    stack.push(...(children.get(p.pid) ?? []));
  }
  return found ? (ticks * 1000) / USER_HZ : null;
}
