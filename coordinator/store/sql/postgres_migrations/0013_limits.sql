-- botfleet on PostgreSQL, version 13: fleet-wide limits.
--
-- A limit caps the jobs running under it (max_running) and the rate they start at
-- (per_second, a token bucket of `burst` tokens: `tokens` as of `refilled_at`). A job
-- names its limits in `limit_key` (the sorted names joined by ','; NULL: none, as for
-- most jobs); a limit named 'op:OP' covers every job of OP without being named. The
-- number running under a limit is counted from the jobs table (never a counter that
-- every way a job can end would have to keep right); a claim locks the rows of the
-- limits it uses (FOR UPDATE, in name order) before counting, so claims in several
-- coordinators take turns on a limit and each counts what the previous one started.
--
-- Jobs with limits leave jobs_claim for their own stream, keyed by limit_key: a claim
-- asks only for the keys whose limits have room, so a full limit's jobs are never
-- visited, and jobs without limits keep their index to themselves.

CREATE TABLE limits (
    name        text PRIMARY KEY,
    max_running integer,           -- NULL: no cap on running jobs
    per_second  float8,            -- NULL: no cap on the start rate
    burst       integer NOT NULL DEFAULT 1,
    tokens      float8 NOT NULL,   -- starts left in the bucket at refilled_at
    refilled_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL
);

ALTER TABLE jobs ADD COLUMN limit_key text;

DROP INDEX jobs_claim;
CREATE INDEX jobs_claim ON jobs (op, priority DESC, seq)
    WHERE state = 'queued' AND waiting_on = 0 AND requires IS NULL AND limit_key IS NULL;
CREATE INDEX jobs_claim_limited ON jobs (op, limit_key, priority DESC, seq)
    WHERE state = 'queued' AND waiting_on = 0 AND limit_key IS NOT NULL;
CREATE INDEX jobs_running_limited ON jobs (limit_key)
    WHERE state = 'running' AND limit_key IS NOT NULL;
