-- Every statement of the PostgreSQL store, each under a `-- name:` header.
--
-- Times are parameters (the coordinator's clock), never now(). Every statement that
-- moves a job checks its state, attempt or holder in its WHERE clause, so several
-- coordinators sharing the database stay correct: a row that changed under a waiting
-- UPDATE is re-checked by PostgreSQL (read committed) and skipped when it no longer
-- matches. Statements that wait for row locks take them in id order (no deadlocks).
-- A job's attempts are spent when attempt - attempt_base reaches max_attempts.

-- ------------------------------------------------------------------ migrations

-- name: lock_migrations
SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0));

-- name: schema_exists
SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1);

-- name: create_schema_version
CREATE TABLE IF NOT EXISTS schema_version (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL
);

-- name: applied_versions
SELECT version FROM schema_version ORDER BY version;

-- name: record_version
INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3);

-- name: ping
SELECT 1;

-- name: server_setting
-- A server setting by name (autovacuum, track_counts), as SHOW gives it.
SELECT current_setting($1);

-- ------------------------------------------------------------------ bots

-- name: get_bot
SELECT b.*,
       ARRAY(SELECT j.id FROM jobs j WHERE j.bot_id = b.id AND j.state = 'running'
             ORDER BY j.seq) AS running
FROM bots b
WHERE b.id = $1;

-- name: list_bots
SELECT b.*,
       ARRAY(SELECT j.id FROM jobs j WHERE j.bot_id = b.id AND j.state = 'running'
             ORDER BY j.seq) AS running
FROM bots b
ORDER BY b.registered_at, b.id;

-- name: online_bot_routes
SELECT operations, labels FROM bots WHERE online;

-- name: insert_bot
-- $1 id, $2 bot_key, $3 instance_id, $4 name, $5 version, $6 capabilities,
-- $7 max_concurrency, $8 now, $9 token_hash, $10 token_expires_at, $11 lease_until,
-- $12 resources, $13 constraints, $14 meta, $15 labels (NULL: none). Registration
-- counts as the bot's first heartbeat (last_heartbeat).
INSERT INTO bots (id, bot_key, instance_id, name, version, capabilities, operations,
                  max_concurrency, bot_max_concurrency, registered_at, last_heartbeat,
                  token_hash, token_expires_at, lease_until, resources, constraints, meta,
                  metrics, labels)
VALUES ($1, $2, $3, $4, $5, $6::text[], $6::text[], $7, $7, $8, $8, $9, $10, $11, $12, $13,
        $14, '{}'::json, $15::jsonb)
ON CONFLICT (bot_key) DO NOTHING
RETURNING id;

-- name: bot_by_key
-- Locked: a heartbeat or claim of this bot waits for the re-registration.
SELECT id, instance_id, operator_operations, operator_max_concurrency, paused, revoked_at
FROM bots WHERE bot_key = $1 FOR NO KEY UPDATE;

-- name: bot_assignment
-- What an operator's change starts from: the bot's own asks and the operator's choices.
SELECT capabilities, bot_max_concurrency, operator_operations, operator_max_concurrency,
       paused
FROM bots WHERE id = $1 FOR NO KEY UPDATE;

-- name: reregister_bot
-- $1 bot, $2 instance, $3 name, $4 version, $5 capabilities, $6 the bot's own
-- concurrency, $7 token_hash, $8 token_expires_at, $9 lease_until, $10 resources,
-- $11 constraints, $12 meta, $13 operations and $14 max_concurrency in force (the
-- caller chose them: rules.assignment_of), $15 now, $16 labels (NULL: none). paused and a pending command
-- survive. A new instance starts with no reported lifecycle, and its registration
-- counts as its first heartbeat; the same instance keeps its last one, which tells
-- what its next heartbeat must list.
UPDATE bots
SET instance_id = $2, name = $3, version = $4, capabilities = $5::text[],
    operations = $13::text[], max_concurrency = $14, bot_max_concurrency = $6,
    online = true, token_hash = $7, token_expires_at = $8, lease_until = $9,
    resources = $10, constraints = $11, meta = $12, labels = $16::jsonb,
    lifecycle = CASE WHEN instance_id = $2 THEN lifecycle END,
    last_heartbeat = CASE WHEN instance_id = $2 THEN last_heartbeat ELSE $15 END
WHERE id = $1;

-- name: bot_for_heartbeat
-- A replaced instance is fenced off like an unknown bot: it must not renew leases.
SELECT lifecycle, pending_command, last_heartbeat FROM bots
WHERE id = $1 AND instance_id = $2 AND online
FOR NO KEY UPDATE;

-- name: heartbeat_bot
-- $1 bot, $2 now, $3 lease_until, $4 lifecycle, $5 pending command, $6 metrics, $7 the
-- jobs it holds unstarted (prefetch; NULL: none).
UPDATE bots
SET lease_until = $3, last_heartbeat = $2, lifecycle = $4, pending_command = $5, metrics = $6,
    held = $7
WHERE id = $1
RETURNING bots.*,
          ARRAY(SELECT j.id FROM jobs j WHERE j.bot_id = bots.id AND j.state = 'running'
                ORDER BY j.seq) AS running;

-- name: extend_leases
-- $1 job ids the bot lists as running, $2 bot, $3 now, $4 job lease ttl (s), $5 the
-- default timeout (s) of a job without its own (NULL: none).
-- Returns the extended jobs, and the listed ones an operator cancelled.
WITH held AS (
    SELECT id FROM jobs
    WHERE id = ANY($1::text[]) AND bot_id = $2 AND state = 'running'
    ORDER BY id
    FOR UPDATE
), extended AS (
    UPDATE jobs j
    SET lease_until = $3::timestamptz
                      + make_interval(secs => greatest(
                          $4::float8, coalesce(j.timeout_s, $5::float8, 0))),
        seen_at = $3  -- the bot has this attempt (see release_lost_jobs)
    FROM held
    WHERE j.id = held.id AND j.bot_id = $2 AND j.state = 'running'
    RETURNING j.id, j.attempt, j.lease_until
), recorded AS (
    UPDATE attempts a SET lease_until = e.lease_until
    FROM extended e
    WHERE a.job_id = e.id AND a.attempt = e.attempt AND a.ended_at IS NULL
)
SELECT id, lease_until, false AS cancelled FROM extended
UNION ALL
SELECT id, NULL, true FROM jobs
WHERE id = ANY($1::text[]) AND bot_id = $2 AND state = 'cancelled';

-- name: update_bot
-- $1 bot, $2 operations, $3 max_concurrency, $4 paused (in force), $5 command (NULL
-- leaves the pending one), $6 and $7 the operator's operations and concurrency (the
-- caller chose them all: rules.choices_after). `quarantine` holds the bot's claims
-- until a `release` (a `drain` leaves the hold as it is).
UPDATE bots
SET operations = $2::text[],
    max_concurrency = $3::integer,
    paused = $4::boolean,
    operator_operations = $6::text[],
    operator_max_concurrency = $7::integer,
    pending_command = coalesce($5::text, pending_command),
    quarantined = CASE $5::text WHEN 'quarantine' THEN true WHEN 'release' THEN false
                                ELSE quarantined END
WHERE id = $1
RETURNING id;

-- name: deregister_bot
UPDATE bots SET online = false
WHERE id = $1 AND instance_id = $2
RETURNING id;

-- name: release_bot_jobs
-- $1 bot ids, $2 now, $3 error when the job's attempts are spent.
-- The live attempt ends as `released`; the job is queued again or failed for good.
-- A locked row is read as it is once locked, so `attempts_left` is current.
WITH held AS (
    SELECT id, attempt - attempt_base < max_attempts AS attempts_left FROM jobs
    WHERE bot_id = ANY($1::text[]) AND state = 'running'
    ORDER BY id
    FOR UPDATE
), released AS (
    UPDATE jobs j
    SET state = CASE WHEN held.attempts_left THEN 'queued' ELSE 'failed' END,
        run_at = CASE WHEN held.attempts_left THEN $2 ELSE j.run_at END,
        finished_at = CASE WHEN held.attempts_left THEN NULL ELSE $2 END,
        error = CASE WHEN held.attempts_left THEN j.error ELSE $3 END,
        lease_until = NULL
    FROM held
    WHERE j.id = held.id AND j.bot_id = ANY($1::text[]) AND j.state = 'running'
    RETURNING j.id, j.op, j.state, j.attempt, j.limit_key
), ended AS (
    UPDATE attempts a SET ended_at = $2, outcome = 'released', error = $3::text
    FROM released r
    WHERE a.job_id = r.id AND a.attempt = r.attempt AND a.ended_at IS NULL
)
SELECT id, op, state, limit_key FROM released ORDER BY id;

-- name: release_lost_jobs
-- Claim answers that never reached the bot (see Store.heartbeat). $1 bot, $2 job ids
-- this heartbeat lists, $3 when its previous heartbeat arrived, $4 now. Its jobs
-- handed out before $3 that neither that heartbeat (seen_at) nor this one lists go
-- back to the queue at once, uncharged: attempt_base goes up with the attempt, so the
-- attempts spent stay as they were; the attempt ends as `lost`. Run before
-- extend_leases, and SKIP LOCKED: a row a report holds is left for the next heartbeat
-- (no lock waits beside the ones extend_leases takes, so no deadlock with a report).
WITH lost AS (
    SELECT id FROM jobs
    WHERE bot_id = $1 AND state = 'running' AND started_at < $3
      AND (seen_at IS NULL OR seen_at < $3) AND NOT (id = ANY($2::text[]))
    ORDER BY id
    FOR UPDATE SKIP LOCKED
), released AS (
    UPDATE jobs j
    SET state = 'queued', run_at = $4, lease_until = NULL, attempt_base = j.attempt_base + 1
    FROM lost
    WHERE j.id = lost.id AND j.bot_id = $1 AND j.state = 'running' AND j.started_at < $3
      AND (j.seen_at IS NULL OR j.seen_at < $3)
    RETURNING j.id, j.op, j.state, j.attempt, j.limit_key
), ended AS (
    UPDATE attempts a SET ended_at = $4, outcome = 'lost'
    FROM released r
    WHERE a.job_id = r.id AND a.attempt = r.attempt AND a.ended_at IS NULL
)
SELECT id, op, state, limit_key FROM released ORDER BY id;

-- name: bot_for_claim
-- Locked: claims of one bot, in every coordinator, take turns (see claim_jobs).
SELECT operations, max_concurrency, paused, quarantined, lifecycle, labels FROM bots
WHERE id = $1 AND online
FOR NO KEY UPDATE;

-- ------------------------------------------------------------------ jobs

-- name: insert_jobs
-- $1 now, then one array per column; an idempotency_key seen before inserts nothing.
INSERT INTO jobs (id, op, payload, state, priority, max_attempts, created_at, run_at,
                  timeout_s, idempotency_key, metadata, expires_at, submitted_by, requires,
                  limit_key)
SELECT u.id, u.op, u.payload, 'queued', u.priority, u.max_attempts, $1, u.run_at,
       u.timeout_s, u.idempotency_key, u.metadata, u.expires_at, u.submitted_by, u.requires,
       u.limit_key
FROM unnest($2::text[], $3::text[], $4::json[], $5::integer[], $6::integer[],
            $7::timestamptz[], $8::float8[], $9::text[], $10::json[], $11::timestamptz[],
            $12::text[], $13::jsonb[], $14::text[])
     WITH ORDINALITY AS u(id, op, payload, priority, max_attempts, run_at, timeout_s,
                          idempotency_key, metadata, expires_at, submitted_by, requires,
                          limit_key, ord)
ORDER BY u.ord
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING *;

-- name: jobs_by_idempotency_key
SELECT * FROM jobs WHERE idempotency_key = ANY($1::text[]);

-- name: claim_jobs
-- $1 bot, $2 operations (already narrowed to the assignment), $3 limit,
-- $4 max_concurrency, $5 now, $6 lease ttl (s), $7 the default timeout (s) of a job
-- without its own (NULL: none), $8 claim id (NULL: none), recorded with each attempt
-- for a repeat of the claim to find, $9 the bot's labels (NULL: none). The caller holds
-- the bot's row lock, so this statement's snapshot counts the bot's running jobs exactly.
-- For each operation, the best runnable jobs come from the jobs_claim index (priority,
-- then FIFO), locked with SKIP LOCKED so concurrent claims pass each other by; the
-- best of those are taken (the others stay locked only until this transaction ends).
-- Jobs with requirements come from jobs_claim_required, only for a bot with labels, and
-- only those whose every required key is among the labels with an allowed value.
-- Jobs with limits are not taken here (see claim_limited_candidates).
WITH room AS (
    SELECT greatest(0, least($3::integer, $4::integer - (
        SELECT count(*) FROM jobs WHERE bot_id = $1 AND state = 'running'))) AS n
), candidates AS (
    SELECT c.id, c.priority, c.seq
    FROM unnest($2::text[]) AS wanted(op)
    CROSS JOIN LATERAL (
        SELECT id, priority, seq FROM jobs
        WHERE state = 'queued' AND waiting_on = 0 AND requires IS NULL AND limit_key IS NULL
            AND op = wanted.op AND run_at <= $5
        ORDER BY priority DESC, seq
        LIMIT (SELECT n FROM room)
        FOR UPDATE SKIP LOCKED
    ) AS c
    UNION ALL
    SELECT c.id, c.priority, c.seq
    FROM unnest($2::text[]) AS wanted(op)
    CROSS JOIN LATERAL (
        SELECT id, priority, seq FROM jobs
        WHERE $9::jsonb IS NOT NULL AND state = 'queued' AND waiting_on = 0
            AND requires IS NOT NULL AND limit_key IS NULL
            AND op = wanted.op AND run_at <= $5
            AND NOT EXISTS (
                SELECT 1 FROM jsonb_each(requires) AS needed(key, allowed)
                WHERE NOT coalesce(needed.allowed ? ($9::jsonb ->> needed.key), false)
            )
        ORDER BY priority DESC, seq
        LIMIT (SELECT n FROM room)
        FOR UPDATE SKIP LOCKED
    ) AS c
), picked AS (
    SELECT id FROM candidates
    ORDER BY priority DESC, seq
    LIMIT (SELECT n FROM room)
), claimed AS (
    UPDATE jobs j
    SET state = 'running', attempt = j.attempt + 1, bot_id = $1, started_at = $5,
        lease_until = $5::timestamptz
                      + make_interval(secs => greatest(
                          $6::float8, coalesce(j.timeout_s, $7::float8, 0))),
        seen_at = NULL, progress = NULL, progress_message = NULL
    FROM picked
    WHERE j.id = picked.id AND j.state = 'queued'
    RETURNING j.*
), recorded AS (
    INSERT INTO attempts (job_id, attempt, bot_id, claimed_at, lease_until, claim_id)
    SELECT id, attempt, $1, $5, lease_until, $8::text FROM claimed
)
SELECT * FROM claimed ORDER BY priority DESC, seq;

-- name: jobs_of_claim
-- $1 claim id, $2 bot. The jobs a claim with this id handed out that still run under
-- this bot in that attempt: what a repeat of the claim gets back, in queue order. Run
-- under the bot's row lock, so a repeat sees the first claim once it has committed.
SELECT j.* FROM attempts a
JOIN jobs j ON j.id = a.job_id AND j.attempt = a.attempt
WHERE a.claim_id = $1 AND a.bot_id = $2 AND j.state = 'running' AND j.bot_id = $2
ORDER BY j.priority DESC, j.seq;

-- name: claim_seen
-- $1 claim id, $2 bot: whether a claim with this id handed this bot any job (running
-- or not): a repeat of it then claims nothing new.
SELECT 1 FROM attempts WHERE claim_id = $1 AND bot_id = $2 LIMIT 1;

-- name: jobs_for_report
-- Locked in id order (no deadlock between two batches). `limited`: a job under a
-- limit, whose end lets waiting claims in (see Changes.freed).
SELECT id, op, state, attempt, attempt_base, max_attempts, bot_id, result_attempt, limit_key,
       limit_key IS NOT NULL OR EXISTS (
           SELECT 1 FROM limits WHERE name = 'op:' || jobs.op) AS limited
FROM jobs
WHERE id = ANY($1::text[])
ORDER BY id
FOR UPDATE;

-- name: attempts_for_report
-- The attempts this bot held; all of them read `revoked` while the bot is revoked.
SELECT job_id, attempt,
       CASE WHEN EXISTS (SELECT 1 FROM bots WHERE id = $2 AND revoked_at IS NOT NULL)
            THEN 'revoked' ELSE outcome END AS outcome
FROM attempts
WHERE job_id = ANY($1::text[]) AND bot_id = $2;

-- name: write_reports
-- Everything a batch of reports changed, and its notices, in one statement.
-- Jobs ($1, a JSON array of objects named as JobChange's fields in
-- coordinator/store/reports.py): one per job the reports moved; the WHERE is the
-- fence (state and attempt as locked). Attempts ($3, likewise): the live ones that
-- ended, each with its error. JSON rather than one array per column: the driver checks
-- every element of an array parameter for nesting, which costs more than the write.
-- $2 now, $4 channel, $5 payloads.
WITH moved AS (
    UPDATE jobs j
    SET state = u.state,
        run_at = coalesce(u.run_at, j.run_at),
        finished_at = u.finished_at,
        lease_until = NULL,
        result = u.result,
        result_attempt = u.result_attempt,
        error = u.error
    FROM json_to_recordset($1::json)
         AS u(job_id text, state text, run_at timestamptz, finished_at timestamptz,
              result json, result_attempt integer, error text, read_state text,
              read_attempt integer)
    WHERE j.id = u.job_id AND j.state = u.read_state AND j.attempt = u.read_attempt
    RETURNING j.id
), ended AS (
    UPDATE attempts a SET ended_at = $2, outcome = e.outcome, error = e.error
    FROM json_to_recordset($3::json) AS e(job_id text, attempt integer, outcome text, error text)
    WHERE a.job_id = e.job_id AND a.attempt = e.attempt AND a.ended_at IS NULL
    RETURNING a.job_id
)
SELECT (SELECT count(*) FROM moved) AS moved,
       (SELECT count(*) FROM (SELECT pg_notify($4, payload) FROM unnest($5::text[]) AS payload) n)
           AS notices;

-- name: set_progress
UPDATE jobs SET progress = $4, progress_message = $5
WHERE id = $1 AND bot_id = $2 AND state = 'running' AND attempt = coalesce($3::integer, attempt)
RETURNING id;

-- name: job_handed_to_bot
SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1) AS found,
       EXISTS (SELECT 1 FROM attempts WHERE job_id = $1 AND bot_id = $2) AS handed;

-- name: get_job
SELECT * FROM jobs WHERE id = $1;

-- name: list_jobs
-- Newest first; $3 is the seq of the last job of the previous page.
SELECT * FROM jobs
WHERE ($1::text IS NULL OR state = $1::text)
  AND ($2::text IS NULL OR op = $2::text)
  AND ($3::bigint IS NULL OR seq < $3::bigint)
ORDER BY seq DESC
LIMIT $4;

-- name: list_jobs_of_submitter
-- A producer's jobs only ($5), from its own stretch of jobs_submitted_by_seq.
SELECT * FROM jobs
WHERE submitted_by = $5::text
  AND ($1::text IS NULL OR state = $1::text)
  AND ($2::text IS NULL OR op = $2::text)
  AND ($3::bigint IS NULL OR seq < $3::bigint)
ORDER BY seq DESC
LIMIT $4;

-- name: list_attempts
-- Attempts given back unstarted (prefetch releases) are left out: nothing ran in them.
SELECT * FROM attempts
WHERE job_id = $1 AND outcome IS DISTINCT FROM 'unstarted'
ORDER BY attempt;

-- name: cancel_job
WITH cancelled AS (
    UPDATE jobs
    SET state = 'cancelled', finished_at = $2, lease_until = NULL
    WHERE id = $1 AND state IN ('queued', 'running')
    RETURNING *
), ended AS (
    UPDATE attempts a SET ended_at = $2, outcome = 'cancelled'
    FROM cancelled c
    WHERE a.job_id = c.id AND a.attempt = c.attempt AND a.ended_at IS NULL
)
SELECT * FROM cancelled;

-- name: retry_job
-- A fresh budget of max_attempts: attempt numbers keep rising from attempt_base.
UPDATE jobs
SET state = 'queued', run_at = $2, attempt_base = attempt, started_at = NULL, finished_at = NULL,
    lease_until = NULL, result = NULL, result_attempt = NULL, error = NULL,
    progress = NULL, progress_message = NULL
WHERE id = $1 AND state IN ('failed', 'cancelled')
RETURNING *;

-- name: next_run_at
SELECT min(run_at) FROM jobs
WHERE state = 'queued' AND waiting_on = 0 AND op = ANY($1::text[]);

-- name: next_run_at_for_bot
-- $1 operations, $2 bot: the earliest run_at of a queued job the bot may take, one
-- without requirements or one whose requirements its labels meet (as in claim_jobs).
SELECT least(
    (SELECT min(run_at) FROM jobs
     WHERE state = 'queued' AND waiting_on = 0 AND requires IS NULL
         AND op = ANY($1::text[])),
    (SELECT min(j.run_at) FROM jobs j JOIN bots b ON b.id = $2 AND b.labels IS NOT NULL
     WHERE j.state = 'queued' AND j.waiting_on = 0 AND j.requires IS NOT NULL
         AND j.op = ANY($1::text[])
         AND NOT EXISTS (
             SELECT 1 FROM jsonb_each(j.requires) AS needed(key, allowed)
             WHERE NOT coalesce(needed.allowed ? (b.labels ->> needed.key), false)
         ))
);

-- name: claim_outlook
-- What a claim would meet, in one statement (one snapshot), without locking: is the bot
-- $1 known and online (NULL: unknown), `next_run_at` for the operations $2 among the
-- jobs it may take (as next_run_at_for_bot), and whether the claim id $3 (NULL: none)
-- handed the bot jobs before (a repeated claim: answered at once, see claim_seen).
SELECT (SELECT online FROM bots WHERE id = $1) AS bot_online,
       least(
           (SELECT min(run_at) FROM jobs
            WHERE state = 'queued' AND waiting_on = 0 AND requires IS NULL
                AND op = ANY($2::text[])),
           (SELECT min(j.run_at) FROM jobs j
            JOIN bots b ON b.id = $1 AND b.labels IS NOT NULL
            WHERE j.state = 'queued' AND j.waiting_on = 0 AND j.requires IS NOT NULL
                AND j.op = ANY($2::text[])
                AND NOT EXISTS (
                    SELECT 1 FROM jsonb_each(j.requires) AS needed(key, allowed)
                    WHERE NOT coalesce(needed.allowed ? (b.labels ->> needed.key), false)
                ))
       ) AS next_run_at,
       EXISTS (
           SELECT 1 FROM attempts a WHERE a.claim_id = $3::text AND a.bot_id = $1
       ) AS handed_out;

-- name: queued_operations
SELECT DISTINCT op FROM jobs WHERE state = 'queued' AND waiting_on = 0;

-- ------------------------------------------------------------------ stats

-- name: count_jobs
SELECT op, state, count(*) AS n FROM jobs GROUP BY op, state;

-- name: count_bots
SELECT online, count(*) AS n FROM bots GROUP BY online;

-- name: finished_since
SELECT count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE state = 'failed') AS failed
FROM jobs
WHERE finished_at >= $1;

-- name: oldest_queued
SELECT min(created_at) FROM jobs WHERE state = 'queued';

-- ------------------------------------------------------------------ reaper

-- name: expire_bots
-- Online bots whose lease ran out go offline; a bot row another process holds is left
-- for its next pass (SKIP LOCKED), and the re-checked WHERE stops a double expiry.
WITH due AS (
    SELECT id FROM bots
    WHERE online AND lease_until < $1
    ORDER BY id
    FOR UPDATE SKIP LOCKED
)
UPDATE bots b SET online = false
FROM due
WHERE b.id = due.id AND b.online AND b.lease_until < $1
RETURNING b.id;

-- name: expire_jobs
-- $1 now, $2 error when the job's attempts are spent (rules.LEASE_EXPIRED).
-- Running jobs whose lease ran out: queued again, or failed once attempts are spent.
WITH due AS (
    SELECT id, attempt - attempt_base < max_attempts AS attempts_left FROM jobs
    WHERE state = 'running' AND lease_until < $1
    ORDER BY id
    FOR UPDATE SKIP LOCKED
), expired AS (
    UPDATE jobs j
    SET state = CASE WHEN due.attempts_left THEN 'queued' ELSE 'failed' END,
        run_at = CASE WHEN due.attempts_left THEN $1 ELSE j.run_at END,
        finished_at = CASE WHEN due.attempts_left THEN NULL ELSE $1 END,
        error = CASE WHEN due.attempts_left THEN j.error ELSE $2::text END,
        lease_until = NULL
    FROM due
    WHERE j.id = due.id AND j.state = 'running' AND j.lease_until < $1
    RETURNING j.id, j.op, j.state, j.attempt, j.limit_key
), ended AS (
    UPDATE attempts a SET ended_at = $1, outcome = 'expired', error = $2::text
    FROM expired e
    WHERE a.job_id = e.id AND a.attempt = e.attempt AND a.ended_at IS NULL
)
SELECT id, op, state, limit_key FROM expired ORDER BY id;

-- name: notify
SELECT pg_notify($1, $2);

-- ------------------------------------------------------------------ retention
-- Each statement locks its batch with SKIP LOCKED and re-checks its WHERE, so reapers
-- in several coordinators take disjoint rows and count each row once.

-- name: expire_queued_jobs
-- $1 now, $2 error, $3 limit: queued jobs past their expires_at end cancelled.
WITH due AS (
    SELECT id FROM jobs
    WHERE state = 'queued' AND expires_at IS NOT NULL AND expires_at <= $1
    ORDER BY expires_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs j SET state = 'cancelled', error = $2::text, finished_at = $1, lease_until = NULL
FROM due
WHERE j.id = due.id AND j.state = 'queued'
RETURNING j.id, j.op, j.state;

-- name: delete_finished_jobs
-- $1 before, $2 limit: the oldest jobs finished before $1, with their attempts and
-- their log lines.
WITH due AS (
    SELECT id FROM jobs
    WHERE finished_at IS NOT NULL AND finished_at < $1
      AND state IN ('succeeded', 'failed', 'cancelled')
    ORDER BY finished_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), deleted AS (
    DELETE FROM jobs j USING due
    WHERE j.id = due.id AND j.finished_at < $1
      AND j.state IN ('succeeded', 'failed', 'cancelled')
    RETURNING j.id
), attempts_deleted AS (
    DELETE FROM attempts a USING deleted WHERE a.job_id = deleted.id
), logs_deleted AS (
    DELETE FROM job_logs l USING deleted WHERE l.job_id = deleted.id
), log_sizes_deleted AS (
    DELETE FROM job_log_sizes s USING deleted WHERE s.job_id = deleted.id
)
SELECT count(*) FROM deleted;

-- name: forget_bots
-- $1 before, $2 limit: offline bots last heard of before $1; their ids stay on jobs.
WITH due AS (
    SELECT id FROM bots
    WHERE NOT online AND coalesce(last_heartbeat, registered_at) < $1
      AND revoked_at IS NULL
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), forgotten AS (
    DELETE FROM bots b USING due
    WHERE b.id = due.id AND NOT b.online AND coalesce(b.last_heartbeat, b.registered_at) < $1
      AND b.revoked_at IS NULL
    RETURNING b.id
)
SELECT count(*) FROM forgotten;

-- ------------------------------------------------------------------ schedules

-- name: get_schedule
-- Locked, before a PUT: two PUTs of one schedule take turns, and a firing skips it.
SELECT * FROM schedules WHERE name = $1 FOR UPDATE;

-- name: list_schedules
SELECT * FROM schedules ORDER BY name;

-- name: put_schedule
-- $1 name, $2 cron, $3 every_s, $4 timezone, $5 job, $6 paused, $7 next_run_at, $8 now.
INSERT INTO schedules (
    name, cron, every_s, timezone, job, paused, next_run_at, created_at, updated_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
ON CONFLICT (name) DO UPDATE SET
    cron = excluded.cron, every_s = excluded.every_s, timezone = excluded.timezone,
    job = excluded.job, paused = excluded.paused, next_run_at = excluded.next_run_at,
    updated_at = excluded.updated_at
RETURNING *;

-- name: delete_schedule
DELETE FROM schedules WHERE name = $1 RETURNING name;

-- name: due_schedules
-- $1 now, $2 limit. SKIP LOCKED: a schedule another coordinator is firing is its
-- business; once it commits, next_run_at is past $1 and the row no longer matches.
SELECT * FROM schedules
WHERE next_run_at IS NOT NULL AND next_run_at <= $1
ORDER BY next_run_at
LIMIT $2
FOR UPDATE SKIP LOCKED;

-- name: advance_schedule
-- $1 name, $2 the due time read, $3 the next one. Only from the due time read: a due
-- time is fired once, whoever else looked at it.
UPDATE schedules SET next_run_at = $3, last_due_at = $2
WHERE name = $1 AND next_run_at = $2
RETURNING name;

-- name: set_schedule_job
UPDATE schedules SET last_job_id = $2 WHERE name = $1;

-- name: next_schedule_due
SELECT min(next_run_at) FROM schedules WHERE next_run_at IS NOT NULL;

-- ---------------------------------------------------------------- role tokens

-- name: insert_api_token
-- $1 id, $2 name, $3 role, $4 token hash, $5 now, $6 expires_at. A live token of the
-- same name (api_tokens_live_name) inserts nothing and returns no row.
INSERT INTO api_tokens (id, name, role, token_hash, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING *;

-- name: api_token_by_hash
SELECT * FROM api_tokens WHERE token_hash = $1;

-- name: list_api_tokens
-- Live tokens (expired ones included: they are listed until revoked), oldest first.
SELECT * FROM api_tokens WHERE revoked_at IS NULL ORDER BY created_at, id;

-- name: revoke_api_token
-- $1 id, $2 now.
UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL
RETURNING *;

-- name: touch_api_token
-- $1 id, $2 now, $3 stale_before: last_used_at moves only when older than that, so a
-- token in steady use costs one write a minute, not one per call.
UPDATE api_tokens SET last_used_at = $2
WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3);

-- ------------------------------------------------------------------ revocation

-- name: revoke_bot
-- $1 bot, $2 now. Offline at once: heartbeats and claims of the bot find no online bot
-- (they lock the row, so one in flight finishes first). The token hash stays, so a
-- call with the token is told it is revoked (see allow_bot).
UPDATE bots SET revoked_at = coalesce(revoked_at, $2), online = false, pending_command = NULL
WHERE id = $1
RETURNING id;

-- name: requeue_jobs_of_revoked_bot
-- $1 bot, $2 now. Uncharged, as a lost claim: attempt_base goes up with the attempt;
-- the attempt ends as `revoked`, so a late report of it is stale.
WITH held AS (
    SELECT id FROM jobs
    WHERE bot_id = $1 AND state = 'running'
    ORDER BY id
    FOR UPDATE
), requeued AS (
    UPDATE jobs j
    SET state = 'queued', run_at = $2, lease_until = NULL, attempt_base = j.attempt_base + 1
    FROM held
    WHERE j.id = held.id AND j.bot_id = $1 AND j.state = 'running'
    RETURNING j.id, j.op, j.state, j.attempt, j.limit_key
), ended AS (
    UPDATE attempts a SET ended_at = $2, outcome = 'revoked'
    FROM requeued r
    WHERE a.job_id = r.id AND a.attempt = r.attempt AND a.ended_at IS NULL
)
SELECT id, op, state, limit_key FROM requeued ORDER BY id;

-- name: allow_bot
-- The token it had when revoked stays dead: the bot registers again for a new one.
UPDATE bots SET
    token_hash = CASE WHEN revoked_at IS NULL THEN token_hash ELSE '' END,
    revoked_at = NULL
WHERE id = $1
RETURNING id;

-- name: bot_for_forget
SELECT online, revoked_at,
       EXISTS (SELECT 1 FROM jobs WHERE state = 'running' AND bot_id = $1) AS running
FROM bots WHERE id = $1
FOR UPDATE;

-- name: forget_bot
-- Its id stays on its jobs and their attempts.
DELETE FROM bots WHERE id = $1 AND NOT online AND revoked_at IS NULL;

-- ------------------------------------------------------------------ job logs

-- name: log_holder
-- $1 job, $2 attempt, $3 bot: the job, and whether this attempt was handed to the bot.
SELECT j.id,
       EXISTS (SELECT 1 FROM attempts
               WHERE job_id = $1 AND attempt = $2 AND bot_id = $3) AS held
FROM jobs j WHERE j.id = $1;

-- name: log_attempts_held
-- Of the jobs $1, the attempts handed to bot $2 (a batch of several jobs' lines).
SELECT job_id, attempt FROM attempts WHERE job_id = ANY($1::text[]) AND bot_id = $2;

-- name: ensure_log_sizes
-- A row to lock for each job $1 (in id order, as every call takes them).
INSERT INTO job_log_sizes (job_id, last_seq, bytes, dropped_lines, dropped_bytes)
SELECT id, 0, 0, 0, 0 FROM unnest($1::text[]) AS id ORDER BY id
ON CONFLICT (job_id) DO NOTHING;

-- name: lock_log_sizes
-- Calls for the same jobs from several coordinators take turns here.
SELECT job_id, last_seq, bytes, dropped_lines, dropped_bytes FROM job_log_sizes
WHERE job_id = ANY($1::text[])
ORDER BY job_id
FOR UPDATE;

-- name: append_log_lines
-- One row per chunk: job, last seq, first seq, attempt, the lines (JSON).
INSERT INTO job_logs (job_id, last_seq, first_seq, attempt, lines)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::integer[], $5::text[]);

-- name: put_log_sizes
UPDATE job_log_sizes s
SET last_seq = u.last_seq, bytes = u.bytes, dropped_lines = u.dropped_lines,
    dropped_bytes = u.dropped_bytes
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[])
     AS u(job_id, last_seq, bytes, dropped_lines, dropped_bytes)
WHERE s.job_id = u.job_id;

-- name: log_page_head
SELECT j.state, j.attempt, j.finished_at,
       coalesce(s.last_seq, 0) AS last_seq, coalesce(s.bytes, 0) AS bytes,
       coalesce(s.dropped_lines, 0) AS dropped_lines,
       coalesce(s.dropped_bytes, 0) AS dropped_bytes
FROM jobs j LEFT JOIN job_log_sizes s ON s.job_id = j.id
WHERE j.id = $1;

-- name: read_logs
-- $1 job, $2 attempt (NULL: all), $3 after, $4 limit.
-- The chunks holding lines after $3, in order (at most $4: each has a line).
SELECT first_seq, attempt, lines FROM job_logs
WHERE job_id = $1 AND ($2::integer IS NULL OR attempt = $2) AND last_seq > $3
ORDER BY last_seq
LIMIT $4;

-- ------------------------------------------------------------------ dependencies
-- (coordinator/store/dependencies.py has the rules.)

-- name: dependency_states_locked
-- $1 ids. FOR SHARE: a dependency cannot end between this read and the commit of the
-- links written from it (its end waits for the lock; a read after its end sees it).
SELECT id, state FROM jobs WHERE id = ANY($1::text[]) ORDER BY id FOR SHARE;

-- name: dependency_states
SELECT id, state FROM jobs WHERE id = ANY($1::text[]);

-- name: insert_dependencies
-- $1 after ids, $2 dependant ids.
INSERT INTO job_dependencies (after_id, job_id)
SELECT * FROM unnest($1::text[], $2::text[])
ON CONFLICT DO NOTHING;

-- name: set_after
-- $1 id, $2 the job ids its submit's `after` named (JSON).
UPDATE jobs SET after_ids = $2 WHERE id = $1

-- name: set_waiting_on
-- $1 ids, $2 counts.
UPDATE jobs j SET waiting_on = d.n
FROM unnest($1::text[], $2::integer[]) AS d(id, n)
WHERE j.id = d.id;

-- name: take_dependency_links
-- $1 jobs that just ended: their links as a dependency and as a dependant (the ones it
-- no longer waits for). Both go.
DELETE FROM job_dependencies
WHERE after_id = ANY($1::text[]) OR job_id = ANY($1::text[])
RETURNING after_id, job_id;

-- name: clear_waiting_on
UPDATE jobs SET waiting_on = 0 WHERE id = ANY($1::text[]) AND waiting_on > 0;

-- name: release_dependants
-- $1 dependants, $2 how many of their dependencies succeeded; locked in id order.
WITH locked AS (
    SELECT id FROM jobs WHERE id = ANY($1::text[]) AND state = 'queued'
    ORDER BY id FOR UPDATE
)
UPDATE jobs j SET waiting_on = greatest(0, j.waiting_on - d.n)
FROM unnest($1::text[], $2::integer[]) AS d(id, n), locked
WHERE j.id = d.id AND locked.id = d.id AND j.state = 'queued'
RETURNING j.id, j.op, j.waiting_on;

-- name: cancel_dependants
-- $1 dependants, $2 their errors, $3 now; locked in id order.
WITH locked AS (
    SELECT id FROM jobs WHERE id = ANY($1::text[]) AND state = 'queued'
    ORDER BY id FOR UPDATE
)
UPDATE jobs j SET state = 'cancelled', error = d.error, finished_at = $3,
    lease_until = NULL, waiting_on = 0
FROM unnest($1::text[], $2::text[]) AS d(id, error), locked
WHERE j.id = d.id AND locked.id = d.id AND j.state = 'queued'
RETURNING j.id;

-- name: pending_dependencies
SELECT d.after_id AS id, j.state FROM job_dependencies d
JOIN jobs j ON j.id = d.after_id
WHERE d.job_id = $1;

-- ------------------------------------------------------------------ limits

-- name: all_limits
SELECT * FROM limits ORDER BY name;

-- name: lock_limits
-- $1 names. In name order, so two claims never wait for each other in a cycle.
SELECT * FROM limits WHERE name = ANY($1::text[]) ORDER BY name FOR UPDATE;

-- name: put_limit
-- $1 name, $2 max_running, $3 per_second, $4 burst, $5 now. A changed burst keeps no
-- more tokens than it allows.
INSERT INTO limits (name, max_running, per_second, burst, tokens, refilled_at, created_at)
VALUES ($1, $2, $3, $4::integer, $4::integer, $5, $5)
ON CONFLICT (name) DO UPDATE SET
    max_running = excluded.max_running,
    per_second = excluded.per_second,
    burst = excluded.burst,
    tokens = least(limits.tokens, excluded.burst);

-- name: delete_limit
DELETE FROM limits WHERE name = $1 RETURNING name;

-- name: record_starts
-- A claim's starts under its limits (locked): $1 names, $2 tokens left, $3 refilled_at,
-- $4 window_at, $5 window_starts, $6 previous_starts (same order).
UPDATE limits SET tokens = u.tokens, refilled_at = u.refilled_at, window_at = u.window_at,
    window_starts = u.window_starts, previous_starts = u.previous_starts
FROM unnest($1::text[], $2::float8[], $3::timestamptz[], $4::timestamptz[], $5::integer[],
            $6::integer[]) AS u(name, tokens, refilled_at, window_at, window_starts,
                                previous_starts)
WHERE limits.name = u.name;

-- name: queued_by_limit_key
-- $1 now. Jobs ready to run (due, no dependency left) per limit_key.
SELECT limit_key, count(*) AS n FROM jobs
WHERE state = 'queued' AND waiting_on = 0 AND limit_key IS NOT NULL AND run_at <= $1
GROUP BY limit_key;

-- name: queued_by_op
-- $1 ops (those with an op: limit), $2 now. Their jobs ready to run.
SELECT op, count(*) AS n FROM jobs
WHERE state = 'queued' AND waiting_on = 0 AND op = ANY($1::text[]) AND run_at <= $2
GROUP BY op;

-- name: limits_with_running
-- $1 names. The limits among them, each with its jobs running now; read without a lock,
-- so only good for telling that every one of a claim's limit groups is full (which
-- holds back nothing wrongly: a claim that misses a freed place takes it next time).
SELECT l.*, (
    SELECT count(*) FROM jobs j
    WHERE j.state = 'running' AND j.limit_key IS NOT NULL
        AND l.name = ANY(string_to_array(j.limit_key, ','))
) AS running
FROM limits l WHERE l.name = ANY($1::text[]);

-- name: running_by_limit_key
SELECT limit_key, count(*) AS n FROM jobs
WHERE state = 'running' AND limit_key IS NOT NULL
GROUP BY limit_key;

-- name: running_by_op
-- Only for operations with an op: limit; walks the running jobs, never the queue.
SELECT op, count(*) AS n FROM jobs
WHERE state = 'running' AND op = ANY($1::text[])
GROUP BY op;

-- name: bot_running_count
SELECT count(*) FROM jobs WHERE bot_id = $1 AND state = 'running';

-- name: queued_limited_ops
-- The operations with claimable jobs that name limits: one index probe per operation
-- (a skip scan), however many jobs stand behind each.
WITH RECURSIVE ops (op) AS (
    SELECT min(op) FROM jobs
    WHERE state = 'queued' AND waiting_on = 0 AND limit_key IS NOT NULL
    UNION ALL
    SELECT (
        SELECT min(j.op) FROM jobs j
        WHERE j.state = 'queued' AND j.waiting_on = 0 AND j.limit_key IS NOT NULL
            AND j.op > ops.op
    )
    FROM ops WHERE ops.op IS NOT NULL
)
SELECT op FROM ops WHERE op IS NOT NULL;

-- name: claimable_limit_keys
-- $1 operations. The distinct limit_keys of claimable jobs of these operations, one
-- index probe per key (a skip scan), however many jobs stand behind each; and a row
-- with a NULL key for each operation with an op: limit. No row: no limit is in play.
WITH RECURSIVE keys (op, limit_key) AS (
    SELECT wanted.op, (
        SELECT min(limit_key) FROM jobs
        WHERE state = 'queued' AND waiting_on = 0 AND limit_key IS NOT NULL
            AND op = wanted.op
    )
    FROM unnest($1::text[]) AS wanted(op)
    UNION ALL
    SELECT keys.op, (
        SELECT min(j.limit_key) FROM jobs j
        WHERE j.state = 'queued' AND j.waiting_on = 0 AND j.limit_key IS NOT NULL
            AND j.op = keys.op AND j.limit_key > keys.limit_key
    )
    FROM keys WHERE keys.limit_key IS NOT NULL
)
SELECT op, limit_key FROM keys WHERE limit_key IS NOT NULL
UNION ALL
SELECT wanted.op, NULL FROM unnest($1::text[]) AS wanted(op)
WHERE EXISTS (SELECT 1 FROM limits WHERE name = 'op:' || wanted.op);

-- name: claim_free_candidates
-- $1 operation, $2 limit, $3 now, $4 the bot's labels. The best runnable jobs of one
-- operation without limits (as claim_jobs picks them, locked the same way), when an
-- op: limit or jobs with limits make the claim pick in steps.
WITH plain AS (
    SELECT id, priority, seq FROM jobs
    WHERE state = 'queued' AND waiting_on = 0 AND requires IS NULL AND limit_key IS NULL
        AND op = $1 AND run_at <= $3
    ORDER BY priority DESC, seq
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), required AS (
    SELECT id, priority, seq FROM jobs
    WHERE $4::jsonb IS NOT NULL AND state = 'queued' AND waiting_on = 0
        AND requires IS NOT NULL AND limit_key IS NULL
        AND op = $1 AND run_at <= $3
        AND NOT EXISTS (
            SELECT 1 FROM jsonb_each(requires) AS needed(key, allowed)
            WHERE NOT coalesce(needed.allowed ? ($4::jsonb ->> needed.key), false)
        )
    ORDER BY priority DESC, seq
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
SELECT * FROM plain UNION ALL SELECT * FROM required;

-- name: claim_limited_candidates
-- $1 operation, $2 limit_key, $3 limit, $4 now, $5 the bot's labels. The best runnable
-- jobs of one operation and one limit_key whose limits all have room (the caller asks
-- only for those, holding their rows' locks).
SELECT id, priority, seq FROM jobs
WHERE state = 'queued' AND waiting_on = 0 AND limit_key IS NOT NULL
    AND op = $1 AND limit_key = $2 AND run_at <= $4
    AND (requires IS NULL OR ($5::jsonb IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM jsonb_each(requires) AS needed(key, allowed)
        WHERE NOT coalesce(needed.allowed ? ($5::jsonb ->> needed.key), false)
    )))
ORDER BY priority DESC, seq
LIMIT $3
FOR UPDATE SKIP LOCKED;

-- name: take_jobs
-- $1 ids, $2 bot, $3 now, $4 lease ttl (s), $5 default timeout (s), $6 claim id: the
-- jobs a stepwise claim chose (and locked), started as claim_jobs starts them.
WITH claimed AS (
    UPDATE jobs j
    SET state = 'running', attempt = j.attempt + 1, bot_id = $2, started_at = $3,
        lease_until = $3::timestamptz
                      + make_interval(secs => greatest(
                          $4::float8, coalesce(j.timeout_s, $5::float8, 0))),
        seen_at = NULL, progress = NULL, progress_message = NULL
    WHERE j.id = ANY($1::text[]) AND j.state = 'queued'
    RETURNING j.*
), recorded AS (
    INSERT INTO attempts (job_id, attempt, bot_id, claimed_at, lease_until, claim_id)
    SELECT id, attempt, $2, $3, lease_until, $6::text FROM claimed
)
SELECT * FROM claimed ORDER BY priority DESC, seq;

-- ---------------------------------------------------------------- prefetch: releases

-- name: jobs_for_release
-- Locked in id order (no deadlock with a report batch, which locks the same way).
SELECT id, op, state, attempt, bot_id FROM jobs
WHERE id = ANY($1::text[])
ORDER BY id
FOR UPDATE;

-- name: unstarted_attempts_of_bot
-- The attempts of these jobs this bot gave back already: a repeated release is answered
-- as the first one was.
SELECT job_id, attempt FROM attempts
WHERE job_id = ANY($1::text[]) AND bot_id = $2 AND outcome = 'unstarted';

-- name: release_jobs
-- $1 job ids, $2 their attempts, $3 bot, $4 now. Queued again at once and uncharged
-- (attempt_base goes up with the attempt), in their place in the queue (run_at and seq
-- kept); the WHERE is the fence. Their attempts end as `unstarted`.
WITH wanted AS (
    SELECT * FROM unnest($1::text[], $2::int[]) AS w(id, attempt)
), released AS (
    UPDATE jobs j
    SET state = 'queued', lease_until = NULL, attempt_base = j.attempt_base + 1
    FROM wanted w
    WHERE j.id = w.id AND j.attempt = w.attempt AND j.state = 'running' AND j.bot_id = $3
    RETURNING j.id, j.attempt
), ended AS (
    UPDATE attempts a SET ended_at = $4, outcome = 'unstarted'
    FROM released r
    WHERE a.job_id = r.id AND a.attempt = r.attempt AND a.ended_at IS NULL
)
SELECT count(*) FROM released;
