-- botfleet on SQLite, version 1: bots, jobs and the attempt history.
--
-- Every moment is an INTEGER of microseconds since the Unix epoch (UTC): exact,
-- compact, and compared with plain integer comparisons in the indexes.
-- JSON documents are TEXT written by msgspec.

CREATE TABLE bots (
    id               TEXT PRIMARY KEY,
    bot_key          TEXT NOT NULL UNIQUE,
    instance_id      TEXT NOT NULL,
    name             TEXT NOT NULL,
    version          TEXT NOT NULL,
    capabilities     TEXT NOT NULL,            -- JSON list of operations it can run
    operations       TEXT NOT NULL,            -- JSON list: its assignment
    max_concurrency  INTEGER NOT NULL,
    paused           INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    online           INTEGER NOT NULL DEFAULT 1 CHECK (online IN (0, 1)),
    registered_at    INTEGER NOT NULL,
    token_hash       TEXT NOT NULL,
    token_expires_at INTEGER NOT NULL,
    lease_until      INTEGER NOT NULL,
    last_heartbeat   INTEGER,
    lifecycle        TEXT,                     -- the state the bot last reported
    pending_command  TEXT CHECK (pending_command IN ('drain', 'quarantine', 'release')),
    resources        TEXT NOT NULL,
    constraints      TEXT NOT NULL,
    meta             TEXT NOT NULL,
    metrics          TEXT NOT NULL
);

-- The reaper looks for online bots whose lease ran out.
CREATE INDEX bots_online_lease ON bots (lease_until) WHERE online = 1;

CREATE TABLE jobs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,  -- FIFO order and the list cursor
    id               TEXT NOT NULL UNIQUE,
    op               TEXT NOT NULL,
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT 0,
    attempt          INTEGER NOT NULL DEFAULT 0,  -- the fencing token
    -- attempt number at which the current budget of max_attempts began (operator retry)
    attempt_base     INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    created_at       INTEGER NOT NULL,
    run_at           INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    lease_until      INTEGER,
    bot_id           TEXT REFERENCES bots (id),
    result           TEXT,
    -- attempt whose complete made the job succeed (a repeat of it is accepted again)
    result_attempt   INTEGER,
    error            TEXT,
    progress         REAL,
    progress_message TEXT,
    timeout_s        REAL,
    idempotency_key  TEXT,  -- unique: jobs_idempotency_key
    metadata         TEXT NOT NULL DEFAULT '{}'
);

-- Claims: per operation, queued jobs by priority then FIFO; run_at rides along so
-- delayed jobs are skipped without reading the table.
CREATE INDEX jobs_claim ON jobs (op, priority DESC, seq, run_at) WHERE state = 'queued';
-- Long-poll wake-ups: the earliest run_at per operation.
CREATE INDEX jobs_queued_run_at ON jobs (op, run_at) WHERE state = 'queued';
-- The reaper: running jobs whose lease ran out.
CREATE INDEX jobs_running_lease ON jobs (lease_until) WHERE state = 'running';
-- A bot's running jobs (max_concurrency, release, bot listings).
CREATE INDEX jobs_running_bot ON jobs (bot_id) WHERE state = 'running';
-- Listing by state or by operation, newest first; counts by state.
CREATE INDEX jobs_state_seq ON jobs (state, seq);
CREATE INDEX jobs_op_seq ON jobs (op, seq);
-- At most one job per idempotency key; partial, so keyless jobs cost nothing.
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Throughput over the last window (state included: counting never reads the table).
CREATE INDEX jobs_finished ON jobs (finished_at, state) WHERE finished_at IS NOT NULL;

-- One row per hand-out of a job: the history proving no two live leases overlapped.
CREATE TABLE attempts (
    job_id      TEXT NOT NULL REFERENCES jobs (id),
    attempt     INTEGER NOT NULL,
    bot_id      TEXT NOT NULL REFERENCES bots (id),
    claimed_at  INTEGER NOT NULL,
    lease_until INTEGER NOT NULL,
    ended_at    INTEGER,
    outcome     TEXT
        CHECK (outcome IN ('succeeded', 'failed', 'expired', 'released', 'cancelled')),
    PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;

-- Jobs by operation and state, kept by triggers, so stats cost a few rows instead of a
-- scan of every job (a few microseconds per state change on a small, cached table).
CREATE TABLE job_counts (
    op    TEXT NOT NULL,
    state TEXT NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (op, state)
) WITHOUT ROWID;

CREATE TRIGGER jobs_counted_on_insert AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_counts (op, state, n) VALUES (NEW.op, NEW.state, 1)
    ON CONFLICT (op, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER jobs_counted_on_state AFTER UPDATE OF state ON jobs
WHEN OLD.state <> NEW.state
BEGIN
    UPDATE job_counts SET n = n - 1 WHERE op = OLD.op AND state = OLD.state;
    INSERT INTO job_counts (op, state, n) VALUES (NEW.op, NEW.state, 1)
    ON CONFLICT (op, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER jobs_counted_on_delete AFTER DELETE ON jobs
BEGIN
    UPDATE job_counts SET n = n - 1 WHERE op = OLD.op AND state = OLD.state;
END;
