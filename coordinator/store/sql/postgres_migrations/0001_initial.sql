-- botfleet on PostgreSQL, version 1: bots, jobs and the attempt history.
-- Applied inside the store's schema (search_path) under an advisory lock.

CREATE TABLE bots (
    id               text PRIMARY KEY,
    bot_key          text NOT NULL UNIQUE,
    instance_id      text NOT NULL,
    name             text NOT NULL,
    version          text NOT NULL,
    capabilities     text[] NOT NULL,
    operations       text[] NOT NULL,
    max_concurrency  integer NOT NULL,
    paused           boolean NOT NULL DEFAULT false,
    online           boolean NOT NULL DEFAULT true,
    registered_at    timestamptz NOT NULL,
    token_hash       text NOT NULL,
    token_expires_at timestamptz NOT NULL,
    lease_until      timestamptz NOT NULL,
    last_heartbeat   timestamptz,
    lifecycle        text,
    pending_command  text,
    resources        json NOT NULL,
    constraints      json NOT NULL,
    meta             json NOT NULL,
    metrics          json NOT NULL
);

-- The reaper looks for online bots whose lease ran out.
CREATE INDEX bots_online_lease ON bots (lease_until) WHERE online;

CREATE TABLE jobs (
    id               text PRIMARY KEY,
    seq              bigserial NOT NULL UNIQUE,  -- FIFO order and the list cursor
    op               text NOT NULL,
    payload          json NOT NULL,
    state            text NOT NULL
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority         integer NOT NULL,
    attempt          integer NOT NULL DEFAULT 0,  -- the fencing token
    -- attempt number at which the current budget of max_attempts began (retry_job)
    attempt_base     integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL,
    created_at       timestamptz NOT NULL,
    run_at           timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    lease_until      timestamptz,
    bot_id           text,
    result           json,
    -- attempt whose complete made the job succeed (a repeat of it is accepted again)
    result_attempt   integer,
    error            text,
    progress         double precision,
    progress_message text,
    timeout_s        double precision,
    idempotency_key  text UNIQUE,
    metadata         json NOT NULL
);

-- Claims walk each operation's queued jobs by priority, then FIFO.
CREATE INDEX jobs_claim ON jobs (op, priority DESC, seq) WHERE state = 'queued';
-- Long-poll wake-ups: earliest run_at per operation.
CREATE INDEX jobs_queued_op_run_at ON jobs (op, run_at) WHERE state = 'queued';
-- The reaper: running jobs whose lease ran out.
CREATE INDEX jobs_running_lease ON jobs (lease_until) WHERE state = 'running';
-- A bot's running jobs (max_concurrency, release).
CREATE INDEX jobs_running_bot ON jobs (bot_id) WHERE state = 'running';
-- Listing by state or op, newest first; throughput over a window.
CREATE INDEX jobs_state_seq ON jobs (state, seq);
CREATE INDEX jobs_op_seq ON jobs (op, seq);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- No foreign key to jobs: attempts are only written by the statements that move their
-- job (in the same transaction), and the check would cost every claim a trigger per row.
CREATE TABLE attempts (
    job_id      text NOT NULL,
    attempt     integer NOT NULL,
    bot_id      text NOT NULL,
    claimed_at  timestamptz NOT NULL,
    lease_until timestamptz NOT NULL,
    ended_at    timestamptz,
    outcome     text
        CHECK (outcome IN ('succeeded', 'failed', 'expired', 'released', 'cancelled')),
    PRIMARY KEY (job_id, attempt)
);

-- "Was this job ever handed to this bot?" for reports.
CREATE INDEX attempts_job_bot ON attempts (job_id, bot_id);
