-- botfleet on PostgreSQL, version 9: what a job did.
--
-- Every attempt keeps its own error (a retry no longer overwrites the one before).
-- A job's log lines are numbered per job (`seq`, from 1, the readers' cursor) and kept
-- in chunks, one row per batch a bot sent (one attempt's lines, `first_seq` to
-- `last_seq`, as JSON [[ts_us, level, text], ...]). At most the coordinator's
-- --max-log-bytes per job; `job_log_sizes` counts what was kept and what was dropped
-- past the cap (its row is locked while a batch is appended, so coordinators sharing
-- the database number lines without gaps or repeats). Both go with their job.

ALTER TABLE attempts ADD COLUMN error text;

CREATE TABLE job_logs (
    job_id    text NOT NULL,
    last_seq  bigint NOT NULL,
    first_seq bigint NOT NULL,
    attempt   integer NOT NULL,
    lines     text NOT NULL,
    PRIMARY KEY (job_id, last_seq)
);

CREATE TABLE job_log_sizes (
    job_id        text PRIMARY KEY,
    last_seq      bigint NOT NULL,
    bytes         bigint NOT NULL,  -- text kept (UTF-8)
    dropped_lines bigint NOT NULL,  -- refused past the cap
    dropped_bytes bigint NOT NULL
);
