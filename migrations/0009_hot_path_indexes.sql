-- The hot path's ledger writes (issue 17/18): job_events_to_status_idx served the /metrics
-- histograms computed from every event; the metrics are kept incrementally now (migration 0003,
-- metric-counters.ts) and nothing reads events by status without the job (the web overview joins
-- by job id, which job_events_job_seq_idx covers), so each event row paid for an index entry
-- nobody read.
DROP INDEX IF EXISTS `job_events_to_status_idx`;
