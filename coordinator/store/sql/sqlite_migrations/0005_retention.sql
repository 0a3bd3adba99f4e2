-- botfleet on SQLite, version 5: nothing grows without bound.
--
-- A queued job may carry a deadline (submit's expires_in_ms): past it, it ends
-- cancelled with the error "expired". Finished jobs and offline bots are deleted by
-- the reaper after their retention; these indexes keep its sweeps to the rows due.
-- Freed pages go to SQLite's freelist and later inserts reuse them, so a steady
-- workload keeps a steady file without auto_vacuum.

ALTER TABLE jobs ADD COLUMN expires_at INTEGER;

CREATE INDEX jobs_queued_expires ON jobs (expires_at)
    WHERE state = 'queued' AND expires_at IS NOT NULL;

CREATE INDEX bots_offline_seen ON bots (coalesce(last_heartbeat, registered_at))
    WHERE online = 0;
