-- botfleet on PostgreSQL, version 9: what a job did.
--
-- Every attempt keeps its own error (a retry no longer overwrites the one before).
-- A job's log lines are kept per attempt under one cursor per job (`seq`, from 1),
-- at most the coordinator's --max-log-bytes of text per job: `job_log_sizes` counts
-- what was kept and what was dropped past the cap (its row is locked while a batch
-- is appended, so coordinators sharing the database number lines without gaps or
-- repeats). Both go with their job.

ALTER TABLE attempts ADD COLUMN error text;

CREATE TABLE job_logs (
    job_id  text NOT NULL,
    seq     bigint NOT NULL,
    attempt integer NOT NULL,
    ts      timestamptz NOT NULL,  -- when the handler logged it
    level   text NOT NULL,
    text    text NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE job_log_sizes (
    job_id        text PRIMARY KEY,
    last_seq      bigint NOT NULL,
    bytes         bigint NOT NULL,  -- text kept (UTF-8)
    dropped_lines bigint NOT NULL,  -- refused past the cap
    dropped_bytes bigint NOT NULL
);
