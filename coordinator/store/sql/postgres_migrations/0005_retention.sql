-- botfleet on PostgreSQL, version 5: nothing grows without bound.
--
-- A queued job may carry a deadline (submit's expires_in_ms): past it, it ends
-- cancelled with the error "expired". Finished jobs and offline bots are deleted by
-- the reaper after their retention; these indexes keep its sweeps to the rows due
-- (finished jobs are found through jobs_finished).

ALTER TABLE jobs ADD COLUMN expires_at timestamptz;

CREATE INDEX jobs_queued_expires ON jobs (expires_at)
    WHERE state = 'queued' AND expires_at IS NOT NULL;

CREATE INDEX bots_offline_seen ON bots ((coalesce(last_heartbeat, registered_at)))
    WHERE NOT online;
