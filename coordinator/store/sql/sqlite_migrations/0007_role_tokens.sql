-- botfleet on SQLite, version 7: role tokens, and who submitted each job.
--
-- A role token is kept only as the sha256 of its secret. Revoking one keeps its row
-- (so its next call is told "revoked", not "unknown"); its name is then free again, so
-- only live tokens need unique names.

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL
        CHECK (role IN ('admin', 'operator', 'producer', 'reader', 'enroll')),
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- The name of the token that submitted the job (NULL before this version): a producer
-- sees and lists only its own jobs.
ALTER TABLE jobs ADD COLUMN submitted_by TEXT;

CREATE INDEX jobs_submitted_by_seq ON jobs (submitted_by, seq);
