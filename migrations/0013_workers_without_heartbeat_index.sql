-- Fewer D1 rows per heartbeat (issue 18 item 5): every write of an agent's heartbeat or load
-- moves last_heartbeat_at, so workers_status_heartbeat_idx cost a second row each time. Nothing
-- needs it: the table holds one row per agent ever paired (a handful), /api/agents lists them all,
-- and the Sentinel's stale-agent sweep (status <> 'OFFLINE') cannot use it for its range anyway.
DROP INDEX IF EXISTS `workers_status_heartbeat_idx`;
