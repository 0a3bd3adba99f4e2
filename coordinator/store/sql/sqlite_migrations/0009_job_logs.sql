-- botfleet on SQLite, version 9: what a job did.
--
-- Every attempt keeps its own error (a retry no longer overwrites the one before).
-- A job's log lines are kept per attempt under one cursor per job (`seq`, from 1),
-- at most the coordinator's --max-log-bytes of text per job: `job_log_sizes` counts
-- what was kept and what was dropped past the cap. Both go with their job.

ALTER TABLE attempts ADD COLUMN error TEXT;

CREATE TABLE job_logs (
    job_id  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    ts      INTEGER NOT NULL,  -- when the handler logged it, microseconds
    level   TEXT NOT NULL,
    text    TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

CREATE TABLE job_log_sizes (
    job_id        TEXT PRIMARY KEY,
    last_seq      INTEGER NOT NULL,
    bytes         INTEGER NOT NULL,  -- text kept (UTF-8)
    dropped_lines INTEGER NOT NULL,  -- refused past the cap
    dropped_bytes INTEGER NOT NULL
) WITHOUT ROWID;
