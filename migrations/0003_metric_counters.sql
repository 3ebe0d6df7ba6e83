-- /metrics is kept incrementally in `counters` from now on (src/ledger/metric-counters.ts):
-- one pass over the existing history sets the starting values, so the numbers carry on.
-- Histogram buckets are stored per bucket (not cumulative); /metrics adds them up.
INSERT INTO counters (name, value)
SELECT 'jobs_status:' || status, COUNT(*) FROM jobs WHERE true GROUP BY status
ON CONFLICT(name) DO UPDATE SET value = excluded.value;
--> statement-breakpoint
INSERT INTO counters (name, value)
SELECT 'events:requeue', COUNT(*) FROM job_events WHERE event = 'requeue'
ON CONFLICT(name) DO UPDATE SET value = excluded.value;
--> statement-breakpoint
INSERT INTO counters (name, value)
WITH d AS (
  SELECT e.at - (SELECT p.at FROM job_events p WHERE p.job_id = e.job_id AND p.to_status = 'QUEUED' AND p.seq < e.seq
                 ORDER BY p.seq DESC LIMIT 1) AS ms
  FROM job_events e WHERE e.to_status IN ('RUNNING')
), m AS (SELECT ms FROM d WHERE ms IS NOT NULL), b(le, v) AS (VALUES ('0.05', 0.05),('0.1', 0.1),('0.25', 0.25),('0.5', 0.5),('1', 1),('2.5', 2.5),('5', 5),('10', 10),('30', 30),('60', 60),('300', 300)),
l AS (SELECT COALESCE((SELECT b.le FROM b WHERE m.ms / 1000.0 <= b.v ORDER BY b.v LIMIT 1), '+Inf') AS le, ms FROM m)
SELECT 'hist:dispatch:le:' || le, COUNT(*) FROM l WHERE true GROUP BY le
UNION ALL SELECT 'hist:dispatch:sum_ms', COALESCE(SUM(ms), 0) FROM m WHERE true
ON CONFLICT(name) DO UPDATE SET value = excluded.value;
--> statement-breakpoint
INSERT INTO counters (name, value)
WITH d AS (
  SELECT e.at - (SELECT p.at FROM job_events p WHERE p.job_id = e.job_id AND p.to_status = 'RUNNING' AND p.seq < e.seq
                 ORDER BY p.seq DESC LIMIT 1) AS ms
  FROM job_events e WHERE e.to_status IN ('SUCCEEDED', 'FAILED', 'CANCELLED')
), m AS (SELECT ms FROM d WHERE ms IS NOT NULL), b(le, v) AS (VALUES ('0.5', 0.5),('1', 1),('2.5', 2.5),('5', 5),('10', 10),('30', 30),('60', 60),('300', 300),('900', 900),('3600', 3600)),
l AS (SELECT COALESCE((SELECT b.le FROM b WHERE m.ms / 1000.0 <= b.v ORDER BY b.v LIMIT 1), '+Inf') AS le, ms FROM m)
SELECT 'hist:duration:le:' || le, COUNT(*) FROM l WHERE true GROUP BY le
UNION ALL SELECT 'hist:duration:sum_ms', COALESCE(SUM(ms), 0) FROM m WHERE true
ON CONFLICT(name) DO UPDATE SET value = excluded.value;
