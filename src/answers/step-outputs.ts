// What each step printed, read back from the job's stored log (already redacted when stored).
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
