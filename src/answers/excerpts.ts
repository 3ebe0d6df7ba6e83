// What each step printed, read back from the job's stored log (already redacted), and the
// bounded excerpts a model may see: the head and the tail of each step, never the whole log.
export interface StepOutput {
  stepId: string;
  text: string;
}

/** Output read per step at most (the log itself is capped per job). */
const MAX_READ_PER_STEP = 512 * 1024;

export function stepOutputs(sql: SqlStorage, attempt: number): Map<string, string> {
  const out = new Map<string, string>();
  const rows = sql.exec<{ step_id: string | null; data: string }>(
    "SELECT step_id, data FROM log_chunks WHERE attempt = ? AND step_id IS NOT NULL ORDER BY seq",
    attempt,
  );
  for (const row of rows) {
    if (!row.step_id) continue;
    const had = out.get(row.step_id) ?? "";
    if (had.length >= MAX_READ_PER_STEP) continue;
    out.set(row.step_id, (had + row.data).slice(0, MAX_READ_PER_STEP));
  }
  return out;
}

/** The head and tail of a step's output within `budget` characters, saying what was left out. */
export function excerpt(text: string, budget: number): string {
  if (text.length <= budget) return text;
  const head = Math.floor(budget / 4);
  const tail = budget - head;
  return `${text.slice(0, head)}\n[… ${text.length - budget} characters left out …]\n${text.slice(-tail)}`;
}
