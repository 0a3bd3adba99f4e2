-- botfleet on PostgreSQL, version 11: jobs that wait for other jobs (submit's `after`).
--
-- A job's `waiting_on` counts its dependencies that have not succeeded yet; a queued
-- job is claimable only at 0, and the claim's partial indexes hold only those, so jobs
-- without dependencies cost the claim nothing more. One row of job_dependencies per
-- unfinished dependency: the transaction that ends the dependency deletes its rows and
-- decrements (succeeded) or cancels (failed, cancelled) each dependant.

ALTER TABLE jobs ADD COLUMN waiting_on integer NOT NULL DEFAULT 0;

CREATE TABLE job_dependencies (
    after_id text NOT NULL,  -- the job waited for
    job_id   text NOT NULL,  -- the dependant
    PRIMARY KEY (after_id, job_id)
);

-- A dependant's own rows: what it waits for (waiting_for), cleared when it ends.
CREATE INDEX job_dependencies_job ON job_dependencies (job_id);

DROP INDEX jobs_claim;
CREATE INDEX jobs_claim ON jobs (op, priority DESC, seq)
    WHERE state = 'queued' AND waiting_on = 0 AND requires IS NULL;
DROP INDEX jobs_claim_required;
CREATE INDEX jobs_claim_required ON jobs (op, priority DESC, seq)
    WHERE state = 'queued' AND waiting_on = 0 AND requires IS NOT NULL;
DROP INDEX jobs_queued_op_run_at;
CREATE INDEX jobs_queued_op_run_at ON jobs (op, run_at)
    WHERE state = 'queued' AND waiting_on = 0;
