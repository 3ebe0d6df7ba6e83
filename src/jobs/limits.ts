// Hard limits of a job's log and artifacts.
export const MAX_LOG_BYTES_PER_JOB = 1024 * 1024 * 1024;
export const TRUNCATION_MARKER = "\n[log truncated: the 1 GiB per-job cap was reached]\n";
export const MAX_ARTIFACT_BYTES = 100 * 1024 * 1024;
