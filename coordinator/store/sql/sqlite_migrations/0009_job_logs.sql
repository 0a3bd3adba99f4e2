-- botfleet on SQLite, version 9: what a job did.
--
-- Every attempt keeps its own error (a retry no longer overwrites the one before).
-- A job's log lines are numbered per job (`seq`, from 1, the readers' cursor) and kept
-- in chunks, one row per batch a bot sent (one attempt's lines, `first_seq` to
-- `last_seq`, as JSON [[ts_us, level, text], ...]): a row per line would cost the one
-- writer ten times the rows. At most the coordinator's --max-log-bytes per job;
-- `job_log_sizes` counts what was kept and what was dropped past the cap. Both go
-- with their job.

ALTER TABLE attempts ADD COLUMN error TEXT;

CREATE TABLE job_logs (
    job_id    TEXT NOT NULL,
    last_seq  INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    attempt   INTEGER NOT NULL,
    lines     TEXT NOT NULL,
    PRIMARY KEY (job_id, last_seq)
) WITHOUT ROWID;

CREATE TABLE job_log_sizes (
    job_id        TEXT PRIMARY KEY,
    last_seq      INTEGER NOT NULL,
    bytes         INTEGER NOT NULL,  -- text kept (UTF-8)
    dropped_lines INTEGER NOT NULL,  -- refused past the cap
    dropped_bytes INTEGER NOT NULL
) WITHOUT ROWID;
