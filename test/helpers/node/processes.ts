// Which processes are running, read from /proc: no external tool (pgrep) that, when missing,
// would make "the process is gone" pass. Without /proc this throws, so such a check fails.
import { readdir, readFile } from "node:fs/promises";

/** Live processes whose command line is exactly `argv` (zombies, whose cmdline is empty, excluded). */
export async function processesWithArgv(argv: string[]): Promise<number[]> {
  const want = `${argv.join("\0")}\0`;
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline === want && (await isAlive(Number(entry)))) found.push(Number(entry));
  }
  return found;
}

/** Processes whose command line, its arguments joined by spaces, contains `text` (a zombie's is empty). */
export async function processesMentioning(text: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.replaceAll("\0", " ").includes(text)) found.push(Number(entry));
  }
  return found;
}

/** Whether a process exists and is not a zombie (state Z) or dead (X). */
export async function isAlive(pid: number): Promise<boolean> {
  await readdir("/proc"); // no /proc: throw rather than claim the process is gone
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  if (stat === null) return false;
  // "pid (comm) S ...": the state follows the last ')' (comm may contain spaces and parens).
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state !== "Z" && state !== "X";
}
