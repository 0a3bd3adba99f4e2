-- Every statement the SQLite store runs, by name (coordinator/store/queries.py loads them).
-- Moments are INTEGER microseconds since the Unix epoch; :now is the store clock's now.
-- A list parameter (:ids, :ops, :bots) is a JSON array, opened with json_each.

-- ---------------------------------------------------------------- connection

-- name: pragma_journal_wal
-- Readers never block the writer and the writer never blocks readers.
PRAGMA journal_mode = WAL

-- name: pragma_synchronous_normal
-- In WAL mode, NORMAL syncs at checkpoints, not at every commit: a commit survives a
-- crash or SIGKILL of the process (it is in the WAL file, in the OS page cache), but the
-- last commits before a power loss or kernel crash may be lost. The database is never
-- corrupted either way.
PRAGMA synchronous = NORMAL

-- name: pragma_busy_timeout
-- Another process holding the write lock (a second server, an operator's sqlite3 shell):
-- wait up to 5 s for it instead of failing at once. On the threads only: the reader
-- thread's connection, and the writer connection around each transaction that runs on
-- the writer thread.
PRAGMA busy_timeout = 5000

-- name: pragma_busy_no_wait
-- Never wait on a lock: the event loop's reader (a busy read goes to the reader thread
-- instead, which may wait), and the writer connection whenever the loop may use it (a
-- busy write goes to the writer thread, which sets `pragma_busy_timeout` around it).
-- No effect on durability.
PRAGMA busy_timeout = 0

-- name: pragma_no_autocheckpoint
-- The writer connection never checkpoints on commit: with the default (1,000 pages) the
-- commit that crosses the threshold copies the WAL into the database and fsyncs both,
-- and commits run on the event loop. `checkpoint_passive` runs instead, spaced by rows
-- written and by time (`connection.Checkpointer`): its bulk on the reader thread while
-- writes go on, its tail on the writer thread (writes queue behind that short part).
-- Durability is the same in kind as with the default: a commit is in the WAL before it
-- returns, so it survives a SIGKILL of the process; a power loss or OS crash can lose
-- what was committed since the last checkpoint's fsync; only the spacing of the
-- checkpoints differs. If the process dies
-- with a long WAL, the next open replays it. Closing the last connection still
-- checkpoints everything and removes the WAL.
PRAGMA wal_autocheckpoint = 0

-- name: checkpoint_passive
-- Copy what it can of the WAL into the database without waiting for any reader or
-- writer; with synchronous=NORMAL it fsyncs the WAL first and the database after. Once
-- the whole WAL is copied (no reader still on an older snapshot), the writer's next
-- transaction starts the WAL over from its beginning, so the file stops growing.
-- Answers (busy, WAL frames, frames copied).
PRAGMA wal_checkpoint(PASSIVE)

-- name: pragma_foreign_keys
-- Off, as PostgreSQL has none: a forgotten bot's id stays on its jobs' history, and
-- attempts are only ever written together with their job.
PRAGMA foreign_keys = OFF

-- name: pragma_cache_size
-- 64 MiB of page cache per connection: the claim and state indexes of a million jobs
-- stay in memory.
PRAGMA cache_size = -65536

-- name: pragma_temp_store_memory
PRAGMA temp_store = MEMORY

-- name: pragma_query_only
-- The reader connection: a bug that writes through it fails instead of competing with
-- the writer thread.
PRAGMA query_only = ON

-- name: pragma_optimize
-- Refresh the planner statistics on close, when SQLite thinks it worthwhile.
PRAGMA optimize

-- name: begin_write
-- Take the write lock at the start, so a transaction never fails half-way to upgrade.
BEGIN IMMEDIATE

-- name: begin_read
BEGIN DEFERRED

-- name: commit
COMMIT

-- name: rollback
ROLLBACK

-- name: ping
SELECT 1

-- ---------------------------------------------------------------- migrations

-- name: create_schema_version
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at INTEGER NOT NULL
)

-- name: applied_versions
SELECT version FROM schema_version ORDER BY version

-- name: record_version
INSERT INTO schema_version (version, name, applied_at) VALUES (:version, :name, :applied_at)

-- ---------------------------------------------------------------- bots

-- name: get_bot
SELECT * FROM bots WHERE id = :id

-- name: list_bots
SELECT * FROM bots ORDER BY registered_at, id

-- name: online_bot_routes
SELECT operations, labels FROM bots WHERE online = 1

-- name: bot_by_key
SELECT id, instance_id, operator_operations, operator_max_concurrency, paused, revoked_at
FROM bots WHERE bot_key = :bot_key

-- name: bot_assignment
-- What an operator's change starts from: the bot's own asks and the operator's choices.
SELECT capabilities, bot_max_concurrency, operator_operations, operator_max_concurrency,
       paused
FROM bots WHERE id = :id

-- name: bot_for_heartbeat
-- A replaced instance is fenced off like an unknown bot: it must not renew leases.
SELECT lifecycle, pending_command, last_heartbeat FROM bots
WHERE id = :id AND instance_id = :instance_id AND online = 1

-- name: bot_for_claim
SELECT operations, max_concurrency, paused, quarantined, lifecycle, labels FROM bots
WHERE id = :id AND online = 1

-- name: insert_bot
-- Registration counts as the bot's first heartbeat (last_heartbeat).
INSERT INTO bots (
    id, bot_key, instance_id, name, version, capabilities, operations, max_concurrency,
    bot_max_concurrency, paused, online, registered_at, last_heartbeat, token_hash,
    token_expires_at, lease_until, resources, constraints, meta, metrics, labels
) VALUES (
    :id, :bot_key, :instance_id, :name, :version, :capabilities, :operations,
    :max_concurrency, :bot_max_concurrency, 0, 1, :now, :now, :token_hash,
    :token_expires_at, :lease_until, :resources, :constraints, :meta, '{}', :labels
)

-- name: reregister_bot
-- A known bot_key registers again. `paused` and a pending command survive; the
-- caller chose the assignment (rules.assignment_of). A new instance starts with no
-- reported lifecycle, and its registration counts as its first heartbeat; the same
-- instance keeps its last one, which tells what its next heartbeat must list.
UPDATE bots SET
    instance_id = :instance_id,
    name = :name,
    version = :version,
    capabilities = :capabilities,
    operations = :operations,
    max_concurrency = :max_concurrency,
    bot_max_concurrency = :bot_max_concurrency,
    last_heartbeat = CASE WHEN :new_instance THEN :now ELSE last_heartbeat END,
    online = 1,
    token_hash = :token_hash,
    token_expires_at = :token_expires_at,
    lease_until = :lease_until,
    lifecycle = CASE WHEN :new_instance THEN NULL ELSE lifecycle END,
    resources = :resources,
    constraints = :constraints,
    meta = :meta,
    labels = :labels
WHERE id = :id

-- name: heartbeat_bot
UPDATE bots SET
    lease_until = :lease_until,
    last_heartbeat = :now,
    lifecycle = :lifecycle,
    pending_command = :pending_command,
    metrics = :metrics,
    held = :held
WHERE id = :id

-- name: update_bot
-- The caller chose the assignment and the operator's choices (rules.choices_after); a
-- NULL command leaves the pending one. `quarantine` holds the bot's claims until a
-- `release` (a `drain` leaves the hold as it is).
UPDATE bots SET
    operations = :operations,
    max_concurrency = :max_concurrency,
    paused = :paused,
    operator_operations = :operator_operations,
    operator_max_concurrency = :operator_max_concurrency,
    pending_command = coalesce(:command, pending_command),
    quarantined = CASE :command WHEN 'quarantine' THEN 1 WHEN 'release' THEN 0
                                ELSE quarantined END
WHERE id = :id
RETURNING id

-- name: deregister_bot
-- A stale instance cannot take its successor offline.
UPDATE bots SET online = 0 WHERE id = :id AND instance_id = :instance_id
RETURNING id

-- name: expire_bots
UPDATE bots SET online = 0
WHERE online = 1 AND lease_until < :now
RETURNING id

-- name: running_job_ids_of_bot
SELECT id FROM jobs INDEXED BY jobs_running_bot WHERE state = 'running' AND bot_id = :bot_id ORDER BY seq

-- name: running_job_ids_all
SELECT bot_id, id FROM jobs WHERE state = 'running' ORDER BY seq

-- name: extend_leases
-- Only jobs this bot still holds: running, and its attempt is the current one.
-- (`+state`: look the listed ids up by id, never walk every running job by state.)
-- `seen_at`: the bot has this attempt (see `requeue_lost_jobs`).
UPDATE jobs SET
    lease_until = :now + CAST(max(:ttl_s, coalesce(timeout_s, :default_timeout_s, 0)) * 1000000 AS INTEGER),
    seen_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND +state = 'running' AND bot_id = :bot_id
RETURNING id, attempt, lease_until

-- name: extend_attempt_lease
UPDATE attempts SET lease_until = :lease_until
WHERE job_id = :job_id AND attempt = :attempt AND ended_at IS NULL

-- name: cancelled_among
SELECT id FROM jobs
WHERE id IN (SELECT value FROM json_each(:ids)) AND +state = 'cancelled' AND bot_id = :bot_id

-- ---------------------------------------------------------------- releasing held jobs
-- Used when bots go away (new instance, deregistration, bot lease expired) and when job
-- leases run out. Run in this order: end the attempts while the jobs are still
-- running, then move the jobs (SQLite has no writable CTEs to do both at once).
-- INDEXED BY: without planner statistics SQLite would walk every running job through
-- jobs_state_seq.

-- name: end_attempts_of_bots
UPDATE attempts SET ended_at = :now, outcome = :outcome, error = :error
FROM jobs INDEXED BY jobs_running_bot
WHERE jobs.state = 'running'
  AND jobs.bot_id IN (SELECT value FROM json_each(:bots))
  AND attempts.job_id = jobs.id AND attempts.attempt = jobs.attempt
  AND attempts.ended_at IS NULL

-- name: release_bot_jobs
-- Each job is queued again, or failed with :error when its attempts are spent.
UPDATE jobs SET
    state = CASE WHEN held.attempts_left THEN 'queued' ELSE 'failed' END,
    run_at = CASE WHEN held.attempts_left THEN :now ELSE run_at END,
    finished_at = CASE WHEN held.attempts_left THEN NULL ELSE :now END,
    error = CASE WHEN held.attempts_left THEN error ELSE :error END,
    lease_until = NULL
FROM (
    SELECT seq, attempt - attempt_base < max_attempts AS attempts_left
    FROM jobs INDEXED BY jobs_running_bot
    WHERE state = 'running' AND bot_id IN (SELECT value FROM json_each(:bots))
) AS held
WHERE jobs.seq = held.seq
RETURNING id, op, state, limit_key

-- name: end_expired_attempts
UPDATE attempts SET ended_at = :now, outcome = 'expired', error = :error
FROM jobs INDEXED BY jobs_running_lease
WHERE jobs.state = 'running' AND jobs.lease_until < :now
  AND attempts.job_id = jobs.id AND attempts.attempt = jobs.attempt
  AND attempts.ended_at IS NULL

-- name: expire_jobs
-- Running jobs whose lease ran out: queued again, or failed with :error once their
-- attempts are spent.
UPDATE jobs SET
    state = CASE WHEN due.attempts_left THEN 'queued' ELSE 'failed' END,
    run_at = CASE WHEN due.attempts_left THEN :now ELSE run_at END,
    finished_at = CASE WHEN due.attempts_left THEN NULL ELSE :now END,
    error = CASE WHEN due.attempts_left THEN error ELSE :error END,
    lease_until = NULL
FROM (
    SELECT seq, attempt - attempt_base < max_attempts AS attempts_left
    FROM jobs INDEXED BY jobs_running_lease
    WHERE state = 'running' AND lease_until < :now
) AS due
WHERE jobs.seq = due.seq
RETURNING id, op, state, limit_key

-- name: release_lost_jobs
-- Claim answers that never reached the bot (see Store.heartbeat): its jobs handed out
-- before its previous heartbeat arrived (:since), which neither that heartbeat
-- (seen_at) nor this one (:ids) lists. They go back to the queue at once, uncharged:
-- attempt_base goes up with the attempt, so the attempts spent (attempt -
-- attempt_base) stay as they were. The caller ends their attempts as `lost`
-- (`end_attempt`): nothing to do in the usual case of no lost job.
UPDATE jobs INDEXED BY jobs_running_bot SET
    state = 'queued', lease_until = NULL, run_at = :now, attempt_base = attempt_base + 1
WHERE state = 'running' AND bot_id = :bot_id
  AND started_at < :since AND (seen_at IS NULL OR seen_at < :since)
  AND id NOT IN (SELECT value FROM json_each(:ids))
RETURNING id, op, attempt, limit_key

-- ---------------------------------------------------------------- submit and claim

-- name: insert_jobs
-- Run once per job (executemany). An idempotency_key seen before inserts nothing; the
-- caller then reads the first job.
INSERT INTO jobs (
    id, op, payload, state, priority, max_attempts, created_at, run_at, timeout_s,
    idempotency_key, metadata, expires_at, submitted_by, requires, limit_key
) VALUES (
    :id, :op, :payload, 'queued', :priority, :max_attempts, :now, :run_at, :timeout_s,
    :idempotency_key, :metadata, :expires_at, :submitted_by, :requires, :limit_key
)
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING

-- name: jobs_by_idempotency_key
-- INDEXED BY: with planner statistics showing mostly keyless jobs, SQLite would scan.
SELECT * FROM jobs INDEXED BY jobs_idempotency_key
WHERE idempotency_key IS NOT NULL AND idempotency_key IN (SELECT value FROM json_each(:keys))

-- name: claim_jobs
-- One statement: pick and take. For each operation, the best `limit` runnable jobs come
-- from the jobs_claim index (priority, then FIFO; INDEXED BY keeps the planner from
-- sorting every runnable job through another index); the best `limit` of those are
-- taken: at most :limit, and no more than leaves the bot at :max_concurrency running jobs
-- (counted here, so the count and the claim are one snapshot). Each job's lease is
-- max(ttl, its timeout, or the default timeout without one) from now; the attempt goes up
-- by one. Jobs without requirements (most) come from jobs_claim; jobs with them from
-- jobs_claim_required_free, only for a bot with labels (:labels, NULL: none), and only
-- those whose every required key is among the labels with an allowed value. Jobs with
-- limits are not taken here (see claim_limited_candidates).
UPDATE jobs SET
    state = 'running',
    attempt = attempt + 1,
    bot_id = :bot_id,
    started_at = :now,
    lease_until = :now + CAST(max(:ttl_s, coalesce(timeout_s, :default_timeout_s, 0)) * 1000000 AS INTEGER),
    seen_at = NULL,
    progress = NULL,
    progress_message = NULL
WHERE seq IN (
    SELECT candidate.seq
    FROM json_each(:ops) AS wanted, jobs AS candidate
    WHERE candidate.seq IN (
        SELECT seq FROM (
            SELECT seq FROM jobs INDEXED BY jobs_claim
            WHERE state = 'queued' AND waiting_on = 0 AND requires IS NULL
                AND limit_key IS NULL AND op = wanted.value
                AND run_at <= :now
            ORDER BY priority DESC, seq
            LIMIT :limit
        )
        UNION ALL
        SELECT seq FROM (
            SELECT seq FROM jobs INDEXED BY jobs_claim_required_free
            WHERE :labels IS NOT NULL AND state = 'queued' AND waiting_on = 0
                AND requires IS NOT NULL AND limit_key IS NULL
                AND op = wanted.value AND run_at <= :now
                AND NOT EXISTS (
                    SELECT 1 FROM json_each(requires) AS needed
                    WHERE NOT EXISTS (
                        SELECT 1 FROM json_each(needed.value) AS allowed
                        WHERE allowed.value = json_extract(:labels, '$."' || needed.key || '"')
                    )
                )
            ORDER BY priority DESC, seq
            LIMIT :limit
        )
    )
    ORDER BY candidate.priority DESC, candidate.seq
    LIMIT max(0, min(:limit, :max_concurrency - (
        SELECT count(*) FROM jobs INDEXED BY jobs_running_bot
        WHERE state = 'running' AND bot_id = :bot_id
    )))
)
RETURNING *

-- name: insert_attempts
-- The attempts of the jobs a claim just took (:seqs, a JSON array), from their rows:
-- one statement for the whole claim, not one per job.
INSERT INTO attempts (job_id, attempt, bot_id, claimed_at, lease_until, claim_id)
SELECT id, attempt, bot_id, :now, lease_until, :claim_id
FROM jobs WHERE seq IN (SELECT value FROM json_each(:seqs))

-- name: jobs_of_claim
-- The jobs a claim with this id handed out that still run under this bot in that
-- attempt: what a repeat of the claim gets back, in queue order. INDEXED BY and CROSS
-- JOIN (attempts first): the planner would rather walk every running job.
SELECT jobs.* FROM attempts INDEXED BY attempts_claim_id
CROSS JOIN jobs ON jobs.id = attempts.job_id AND jobs.attempt = attempts.attempt
WHERE attempts.claim_id = :claim_id AND attempts.bot_id = :bot_id
    AND jobs.state = 'running' AND jobs.bot_id = :bot_id
ORDER BY jobs.priority DESC, jobs.seq

-- name: claim_seen
-- Whether a claim with this id handed this bot any job (running or not): a repeat of it
-- then claims nothing new.
SELECT 1 FROM attempts INDEXED BY attempts_claim_id
WHERE claim_id = :claim_id AND bot_id = :bot_id
LIMIT 1

-- name: next_run_at
-- The earliest run_at of a queued job for these operations: one index probe per operation.
SELECT min((
    SELECT min(run_at) FROM jobs INDEXED BY jobs_queued_run_at
    WHERE state = 'queued' AND waiting_on = 0 AND op = wanted.value
))
FROM json_each(:ops) AS wanted

-- name: next_run_at_for_bot
-- The earliest run_at of a queued job for these operations that the bot :bot_id may
-- take: one without requirements (first in the run_at index), or one whose
-- requirements its labels meet (as in claim_jobs).
SELECT min(run_at) FROM (
    SELECT (
        SELECT run_at FROM jobs INDEXED BY jobs_queued_run_at
        WHERE state = 'queued' AND waiting_on = 0 AND op = wanted.value AND requires IS NULL
        ORDER BY run_at LIMIT 1
    ) AS run_at
    FROM json_each(:ops) AS wanted
    UNION ALL
    SELECT (
        SELECT min(run_at) FROM jobs INDEXED BY jobs_claim_required, bots AS bot
        WHERE bot.id = :bot_id AND bot.labels IS NOT NULL
            AND state = 'queued' AND waiting_on = 0 AND requires IS NOT NULL
            AND op = wanted.value
            AND NOT EXISTS (
                SELECT 1 FROM json_each(requires) AS needed
                WHERE NOT EXISTS (
                    SELECT 1 FROM json_each(needed.value) AS allowed
                    WHERE allowed.value = json_extract(bot.labels, '$."' || needed.key || '"')
                )
            )
    )
    FROM json_each(:ops) AS wanted
)

-- name: claim_outlook
-- What a claim would meet, in one statement (one snapshot), without the write lock: is
-- the bot known and online (NULL: unknown), `next_run_at` for these operations among
-- the jobs it may take (as next_run_at_for_bot), and whether :claim_id (NULL: none)
-- has jobs running under the bot (a repeated claim).
SELECT
    (SELECT online FROM bots WHERE id = :bot_id) AS bot_online,
    (
        SELECT min(run_at) FROM (
            SELECT (
                SELECT run_at FROM jobs INDEXED BY jobs_queued_run_at
                WHERE state = 'queued' AND waiting_on = 0 AND op = wanted.value AND requires IS NULL
                ORDER BY run_at LIMIT 1
            ) AS run_at
            FROM json_each(:ops) AS wanted
            UNION ALL
            SELECT (
                SELECT min(run_at) FROM jobs INDEXED BY jobs_claim_required, bots AS bot
                WHERE bot.id = :bot_id AND bot.labels IS NOT NULL
                    AND state = 'queued' AND waiting_on = 0 AND requires IS NOT NULL
                    AND op = wanted.value
                    AND NOT EXISTS (
                        SELECT 1 FROM json_each(requires) AS needed
                        WHERE NOT EXISTS (
                            SELECT 1 FROM json_each(needed.value) AS allowed
                            WHERE allowed.value
                                = json_extract(bot.labels, '$."' || needed.key || '"')
                        )
                    )
            )
            FROM json_each(:ops) AS wanted
        )
    ) AS next_run_at,
    EXISTS (
        SELECT 1 FROM attempts INDEXED BY attempts_claim_id
        WHERE attempts.claim_id = :claim_id AND attempts.bot_id = :bot_id
    ) AS handed_out

-- ---------------------------------------------------------------- reports

-- name: jobs_for_report
-- `limited`: a job under a limit, whose end lets waiting claims in (see Changes.freed).
-- Read by position (sqlite/reports.py): keep the columns' order.
SELECT id, op, state, attempt, attempt_base, max_attempts, bot_id, result_attempt, limit_key,
       limit_key IS NOT NULL OR EXISTS (
           SELECT 1 FROM limits WHERE name = 'op:' || jobs.op) AS limited
FROM jobs WHERE id IN (SELECT value FROM json_each(:ids))

-- name: attempts_for_report
-- The attempts this bot held; all of them read `revoked` while the bot is revoked.
-- Read by position (sqlite/reports.py): keep the columns' order.
SELECT job_id, attempt,
       CASE WHEN EXISTS (SELECT 1 FROM bots WHERE id = :bot_id AND revoked_at IS NOT NULL)
            THEN 'revoked' ELSE outcome END AS outcome
FROM attempts
WHERE job_id IN (SELECT value FROM json_each(:ids)) AND bot_id = :bot_id

-- name: report_succeeded
-- The jobs a batch of reports moved, one statement per outcome because an UPDATE costs
-- by the columns it sets (their indexes are kept up), and one for the whole batch:
-- :rows is a JSON array of [job_id, read_state, read_attempt, ...] (the fence: state
-- and attempt as read), then the outcome's own values; a result is JSON text inside it.
-- The attempts end in `end_attempts`.
UPDATE jobs SET
    state = 'succeeded', result = json_extract(moved.value, '$[3]'),
    result_attempt = json_extract(moved.value, '$[4]'), error = NULL,
    finished_at = :now, lease_until = NULL
FROM json_each(:rows) AS moved
WHERE jobs.id = json_extract(moved.value, '$[0]')
    AND jobs.state = json_extract(moved.value, '$[1]')
    AND jobs.attempt = json_extract(moved.value, '$[2]')

-- name: report_retried
-- [job_id, read_state, read_attempt, run_at, error]
UPDATE jobs SET
    state = 'queued', run_at = json_extract(moved.value, '$[3]'), lease_until = NULL,
    error = json_extract(moved.value, '$[4]')
FROM json_each(:rows) AS moved
WHERE jobs.id = json_extract(moved.value, '$[0]')
    AND jobs.state = json_extract(moved.value, '$[1]')
    AND jobs.attempt = json_extract(moved.value, '$[2]')

-- name: report_failed
-- [job_id, read_state, read_attempt, error]
UPDATE jobs SET
    state = 'failed', error = json_extract(moved.value, '$[3]'), finished_at = :now,
    lease_until = NULL
FROM json_each(:rows) AS moved
WHERE jobs.id = json_extract(moved.value, '$[0]')
    AND jobs.state = json_extract(moved.value, '$[1]')
    AND jobs.attempt = json_extract(moved.value, '$[2]')

-- name: end_attempt
UPDATE attempts SET ended_at = :now, outcome = :outcome, error = :error
WHERE job_id = :job_id AND attempt = :attempt AND ended_at IS NULL

-- name: end_attempts
-- `end_attempt` for a batch in one statement: :rows is a JSON array of
-- [job_id, attempt, outcome, error].
UPDATE attempts SET
    ended_at = :now, outcome = json_extract(ended.value, '$[2]'),
    error = json_extract(ended.value, '$[3]')
FROM json_each(:rows) AS ended
WHERE attempts.job_id = json_extract(ended.value, '$[0]')
    AND attempts.attempt = json_extract(ended.value, '$[1]')
    AND attempts.ended_at IS NULL

-- name: set_progress
-- Only from the holder of the live lease (:attempt NULL: whichever attempt it holds).
UPDATE jobs SET progress = :progress, progress_message = :message
WHERE id = :job_id AND bot_id = :bot_id AND state = 'running'
  AND attempt = coalesce(:attempt, attempt)
RETURNING id

-- name: job_handed_to_bot
SELECT EXISTS (SELECT 1 FROM jobs WHERE id = :job_id) AS found,
       EXISTS (SELECT 1 FROM attempts WHERE job_id = :job_id AND bot_id = :bot_id) AS handed

-- ---------------------------------------------------------------- operator verbs

-- name: cancel_job
-- Its attempt, if still live, ends in `end_attempt` (a no-op for a queued job).
UPDATE jobs SET state = 'cancelled', finished_at = :now, lease_until = NULL
WHERE id = :job_id AND state IN ('queued', 'running')
RETURNING *

-- name: retry_job
-- A fresh budget of max_attempts: attempts counted from the current number on.
UPDATE jobs SET
    state = 'queued', run_at = :now, attempt_base = attempt, lease_until = NULL,
    started_at = NULL, finished_at = NULL, result = NULL, result_attempt = NULL,
    error = NULL, progress = NULL, progress_message = NULL
WHERE id = :job_id AND state IN ('failed', 'cancelled')
RETURNING *

-- ---------------------------------------------------------------- reads

-- name: get_job
SELECT * FROM jobs WHERE id = :id

-- name: list_attempts
-- Attempts given back unstarted (prefetch releases) are left out: nothing ran in them.
SELECT * FROM attempts WHERE job_id = :job_id AND outcome IS NOT 'unstarted' ORDER BY attempt

-- name: list_jobs
-- Newest first; :before is the seq of the last job of the previous page.
SELECT * FROM jobs WHERE seq < :before ORDER BY seq DESC LIMIT :limit

-- name: list_jobs_by_state
SELECT * FROM jobs INDEXED BY jobs_state_seq
WHERE state = :state AND seq < :before ORDER BY seq DESC LIMIT :limit

-- name: list_jobs_by_op
SELECT * FROM jobs INDEXED BY jobs_op_seq
WHERE op = :op AND seq < :before ORDER BY seq DESC LIMIT :limit

-- name: list_jobs_by_state_and_op
SELECT * FROM jobs INDEXED BY jobs_state_seq
WHERE state = :state AND op = :op AND seq < :before ORDER BY seq DESC LIMIT :limit

-- name: list_jobs_of_submitter
-- A producer's jobs only, from its own stretch of the index; state and op filter those.
SELECT * FROM jobs INDEXED BY jobs_submitted_by_seq
WHERE submitted_by = :submitted_by AND seq < :before
  AND (:state IS NULL OR state = :state) AND (:op IS NULL OR op = :op)
ORDER BY seq DESC LIMIT :limit

-- name: count_jobs
-- Kept by the triggers on jobs (see the migration).
SELECT op, state, n FROM job_counts WHERE n > 0

-- name: count_bots
SELECT online, count(*) AS n FROM bots GROUP BY online

-- name: finished_since
SELECT count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE state = 'failed') AS failed
FROM jobs INDEXED BY jobs_finished
WHERE finished_at IS NOT NULL AND finished_at >= :since AND state IN ('succeeded', 'failed')

-- name: oldest_queued
SELECT created_at FROM jobs INDEXED BY jobs_state_seq
WHERE state = 'queued' ORDER BY seq LIMIT 1

-- ---------------------------------------------------------------- retention

-- name: expire_queued_jobs
-- Queued jobs past their expires_at end cancelled with :error, at most :limit of them.
UPDATE jobs SET state = 'cancelled', error = :error, finished_at = :now, lease_until = NULL
WHERE seq IN (
    SELECT seq FROM jobs INDEXED BY jobs_queued_expires
    WHERE state = 'queued' AND expires_at IS NOT NULL AND expires_at <= :now
    ORDER BY expires_at
    LIMIT :limit
)
RETURNING id, op, state

-- name: delete_finished_jobs
-- The oldest :limit jobs finished before :before (jobs_finished holds the state too).
DELETE FROM jobs
WHERE seq IN (
    SELECT seq FROM jobs INDEXED BY jobs_finished
    WHERE finished_at IS NOT NULL AND finished_at < :before
      AND state IN ('succeeded', 'failed', 'cancelled')
    ORDER BY finished_at
    LIMIT :limit
)
RETURNING id

-- name: delete_attempts_of_jobs
DELETE FROM attempts WHERE job_id IN (SELECT value FROM json_each(:ids))

-- name: delete_logs_of_jobs
DELETE FROM job_logs WHERE job_id IN (SELECT value FROM json_each(:ids))

-- name: delete_log_sizes_of_jobs
DELETE FROM job_log_sizes WHERE job_id IN (SELECT value FROM json_each(:ids))

-- name: forget_bots
-- Offline bots last heard of before :before, at most :limit; their ids stay on jobs.
DELETE FROM bots
WHERE id IN (
    SELECT id FROM bots INDEXED BY bots_offline_seen
    WHERE online = 0 AND coalesce(last_heartbeat, registered_at) < :before
      AND revoked_at IS NULL
    LIMIT :limit
)
RETURNING id

-- ---------------------------------------------------------------- schedules

-- name: get_schedule
SELECT * FROM schedules WHERE name = :name

-- name: list_schedules
SELECT * FROM schedules ORDER BY name

-- name: put_schedule
INSERT INTO schedules (
    name, cron, every_s, timezone, job, paused, next_run_at, created_at, updated_at
) VALUES (
    :name, :cron, :every_s, :timezone, :job, :paused, :next_run_at, :now, :now
)
ON CONFLICT (name) DO UPDATE SET
    cron = excluded.cron, every_s = excluded.every_s, timezone = excluded.timezone,
    job = excluded.job, paused = excluded.paused, next_run_at = excluded.next_run_at,
    updated_at = excluded.updated_at
RETURNING *

-- name: delete_schedule
DELETE FROM schedules WHERE name = :name RETURNING name

-- name: due_schedules
-- The write lock is held (BEGIN IMMEDIATE), so no other process fires them meanwhile.
SELECT * FROM schedules INDEXED BY schedules_due
WHERE next_run_at IS NOT NULL AND next_run_at <= :now
ORDER BY next_run_at
LIMIT :limit

-- name: advance_schedule
-- Only from the due time read: a due time is fired once, whoever else looked at it.
UPDATE schedules SET next_run_at = :next_run_at, last_due_at = :due
WHERE name = :name AND next_run_at = :due
RETURNING name

-- name: set_schedule_job
UPDATE schedules SET last_job_id = :job_id WHERE name = :name

-- name: next_schedule_due
SELECT min(next_run_at) AS next_run_at FROM schedules INDEXED BY schedules_due
WHERE next_run_at IS NOT NULL

-- ---------------------------------------------------------------- role tokens

-- name: insert_api_token
-- A live token of the same name (api_tokens_live_name) inserts nothing and returns no row.
INSERT INTO api_tokens (id, name, role, token_hash, created_at, expires_at)
VALUES (:id, :name, :role, :token_hash, :now, :expires_at)
ON CONFLICT DO NOTHING
RETURNING *

-- name: api_token_by_hash
SELECT * FROM api_tokens WHERE token_hash = :token_hash

-- name: list_api_tokens
-- Live tokens (expired ones included: they are listed until revoked), oldest first.
SELECT * FROM api_tokens WHERE revoked_at IS NULL ORDER BY created_at, id

-- name: revoke_api_token
UPDATE api_tokens SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL
RETURNING *

-- name: touch_api_token
-- last_used_at moves only when older than :stale_before: a token in steady use costs
-- one write a minute, not one per call.
UPDATE api_tokens SET last_used_at = :now
WHERE id = :id AND (last_used_at IS NULL OR last_used_at < :stale_before)

-- ---------------------------------------------------------------- revocation

-- name: revoke_bot
-- Offline at once: heartbeats and claims of the bot find no online bot. The token hash
-- stays, so a call with the token is told it is revoked (see `allow_bot`).
UPDATE bots SET revoked_at = coalesce(revoked_at, :now), online = 0, pending_command = NULL
WHERE id = :id
RETURNING id

-- name: end_attempts_of_revoked_bot
-- Before `requeue_jobs_of_revoked_bot`, while the jobs still run.
UPDATE attempts SET ended_at = :now, outcome = 'revoked'
FROM jobs INDEXED BY jobs_running_bot
WHERE jobs.state = 'running' AND jobs.bot_id = :bot_id
  AND attempts.job_id = jobs.id AND attempts.attempt = jobs.attempt
  AND attempts.ended_at IS NULL

-- name: requeue_jobs_of_revoked_bot
-- Uncharged, as a lost claim: attempt_base goes up with the attempt.
UPDATE jobs INDEXED BY jobs_running_bot SET
    state = 'queued', lease_until = NULL, run_at = :now, attempt_base = attempt_base + 1
WHERE state = 'running' AND bot_id = :bot_id
RETURNING id, op, state, limit_key

-- name: allow_bot
-- The token it had when revoked stays dead: the bot registers again for a new one.
UPDATE bots SET
    token_hash = CASE WHEN revoked_at IS NULL THEN token_hash ELSE '' END,
    revoked_at = NULL
WHERE id = :id
RETURNING id

-- name: bot_for_forget
SELECT online, revoked_at,
       EXISTS (SELECT 1 FROM jobs INDEXED BY jobs_running_bot
               WHERE state = 'running' AND bot_id = :id) AS running
FROM bots WHERE id = :id

-- name: forget_bot
-- Its id stays on its jobs and their attempts.
DELETE FROM bots WHERE id = :id AND online = 0 AND revoked_at IS NULL

-- ------------------------------------------------------------------ job logs

-- name: log_holder
-- The job, and whether this attempt of it was handed to :bot_id.
SELECT jobs.id,
       EXISTS (SELECT 1 FROM attempts
               WHERE job_id = :job_id AND attempt = :attempt AND bot_id = :bot_id) AS held
FROM jobs WHERE id = :job_id

-- name: log_attempts_held
-- Of the jobs :ids, the attempts handed to :bot_id (a batch of several jobs' lines).
SELECT job_id, attempt FROM attempts
WHERE job_id IN (SELECT value FROM json_each(:ids)) AND bot_id = :bot_id

-- name: lock_log_sizes
SELECT job_id, last_seq, bytes, dropped_lines, dropped_bytes FROM job_log_sizes
WHERE job_id IN (SELECT value FROM json_each(:ids))

-- name: put_log_sizes
INSERT INTO job_log_sizes (job_id, last_seq, bytes, dropped_lines, dropped_bytes)
VALUES (:job_id, :last_seq, :bytes, :dropped_lines, :dropped_bytes)
ON CONFLICT (job_id) DO UPDATE SET
    last_seq = excluded.last_seq, bytes = excluded.bytes,
    dropped_lines = excluded.dropped_lines, dropped_bytes = excluded.dropped_bytes

-- name: append_log_lines
INSERT INTO job_logs (job_id, last_seq, first_seq, attempt, lines)
VALUES (:job_id, :last_seq, :first_seq, :attempt, :lines)

-- name: log_page_head
SELECT jobs.state, jobs.attempt, jobs.finished_at,
       coalesce(s.last_seq, 0) AS last_seq, coalesce(s.bytes, 0) AS bytes,
       coalesce(s.dropped_lines, 0) AS dropped_lines,
       coalesce(s.dropped_bytes, 0) AS dropped_bytes
FROM jobs LEFT JOIN job_log_sizes AS s ON s.job_id = jobs.id
WHERE jobs.id = :job_id

-- name: read_logs
-- The chunks holding lines after :after, in order (at most :limit: each has a line).
SELECT first_seq, attempt, lines FROM job_logs
WHERE job_id = :job_id AND last_seq > :after ORDER BY last_seq LIMIT :limit

-- name: read_logs_of_attempt
-- Walks the job's chunks (at most the cap's worth) in cursor order for one attempt's.
SELECT first_seq, attempt, lines FROM job_logs
WHERE job_id = :job_id AND last_seq > :after AND attempt = :attempt
ORDER BY last_seq LIMIT :limit

-- ---------------------------------------------------------------- dependencies
-- (coordinator/store/dependencies.py has the rules.)

-- name: dependency_states
SELECT id, state FROM jobs WHERE id IN (SELECT value FROM json_each(:ids))

-- name: insert_dependencies
INSERT INTO job_dependencies (after_id, job_id) VALUES (:after_id, :job_id)
ON CONFLICT DO NOTHING

-- name: set_waiting_on
UPDATE jobs SET waiting_on = :waiting_on WHERE id = :job_id

-- name: set_after
UPDATE jobs SET after_ids = :after_ids WHERE id = :job_id

-- name: take_dependency_links
-- The links of jobs that just ended (:ids): as a dependency and as a dependant (the
-- ones it no longer waits for). Both go. Two primary-key probes per id: with no
-- dependencies at all, this is what a transaction that ends jobs pays.
DELETE FROM job_dependencies
WHERE after_id IN (SELECT value FROM json_each(:ids))
   OR job_id IN (SELECT value FROM json_each(:ids))
RETURNING after_id, job_id

-- name: clear_waiting_on
UPDATE jobs SET waiting_on = 0 WHERE id = :job_id AND waiting_on > 0

-- name: release_dependants
UPDATE jobs SET waiting_on = max(0, waiting_on - :n)
WHERE id = :job_id AND state = 'queued'
RETURNING op, waiting_on

-- name: cancel_dependants
UPDATE jobs SET
    state = 'cancelled', error = :error, finished_at = :now, lease_until = NULL, waiting_on = 0
WHERE id = :job_id AND state = 'queued'
RETURNING id

-- name: pending_dependencies
SELECT d.after_id AS id, j.state FROM job_dependencies AS d
JOIN jobs AS j ON j.id = d.after_id
WHERE d.job_id = :job_id

-- ---------------------------------------------------------------- limits

-- name: all_limits
SELECT * FROM limits ORDER BY name

-- name: put_limit
-- A changed burst keeps no more tokens than it allows.
INSERT INTO limits (name, max_running, per_second, burst, tokens, refilled_at, created_at)
VALUES (:name, :max_running, :per_second, :burst, :burst, :now, :now)
ON CONFLICT (name) DO UPDATE SET
    max_running = excluded.max_running,
    per_second = excluded.per_second,
    burst = excluded.burst,
    tokens = min(limits.tokens, excluded.burst)

-- name: delete_limit
DELETE FROM limits WHERE name = :name RETURNING name

-- name: record_starts
-- A claim's starts under one limit: its bucket spent, the starts counted.
UPDATE limits SET tokens = :tokens, refilled_at = :refilled_at, window_at = :window_at,
    window_starts = :window_starts, previous_starts = :previous_starts
WHERE name = :name

-- name: queued_by_limit_key
-- Jobs ready to run (due, no dependency left) per limit_key, read off their own index.
SELECT limit_key, count(*) AS n FROM jobs INDEXED BY jobs_claim_limited
WHERE state = 'queued' AND waiting_on = 0 AND limit_key IS NOT NULL AND run_at <= :now
GROUP BY op, limit_key

-- name: queued_by_op
-- Jobs ready to run of the operations with an op: limit.
SELECT op, count(*) AS n FROM jobs INDEXED BY jobs_queued_run_at
WHERE state = 'queued' AND waiting_on = 0 AND run_at <= :now
    AND op IN (SELECT value FROM json_each(:ops))
GROUP BY op

-- name: running_by_limit_key
SELECT limit_key, count(*) AS n FROM jobs INDEXED BY jobs_running_limited
WHERE state = 'running' AND limit_key IS NOT NULL
GROUP BY limit_key

-- name: running_by_op
-- Only for operations with an op: limit; walks the running jobs (as many as the
-- fleet's slots at most), never the queue.
SELECT op, count(*) AS n FROM jobs INDEXED BY jobs_running_bot
WHERE state = 'running' AND op IN (SELECT value FROM json_each(:ops))
GROUP BY op

-- name: bot_running_count
SELECT count(*) AS n FROM jobs INDEXED BY jobs_running_bot
WHERE state = 'running' AND bot_id = :bot_id

-- name: queued_limited_ops
-- The operations with claimable jobs that name limits: one index probe per operation
-- (a skip scan), however many jobs stand behind each.
WITH RECURSIVE ops (op) AS (
    SELECT min(op) FROM jobs INDEXED BY jobs_claim_limited
    WHERE state = 'queued' AND waiting_on = 0 AND limit_key IS NOT NULL
    UNION ALL
    SELECT (
        SELECT min(op) FROM jobs INDEXED BY jobs_claim_limited
        WHERE state = 'queued' AND waiting_on = 0 AND limit_key IS NOT NULL AND op > ops.op
    )
    FROM ops WHERE ops.op IS NOT NULL
)
SELECT op FROM ops WHERE op IS NOT NULL

-- name: claimable_limit_keys
-- The distinct limit_keys of claimable jobs of these operations, one index probe per
-- key (a skip scan), however many jobs stand behind each; and a row with a NULL key
-- for each operation with an op: limit. No row: no limit is in play.
WITH RECURSIVE keys (op, limit_key) AS (
    SELECT wanted.value, (
        SELECT min(limit_key) FROM jobs INDEXED BY jobs_claim_limited
        WHERE state = 'queued' AND waiting_on = 0 AND limit_key IS NOT NULL
            AND op = wanted.value
    )
    FROM json_each(:ops) AS wanted
    UNION ALL
    SELECT keys.op, (
        SELECT min(limit_key) FROM jobs INDEXED BY jobs_claim_limited
        WHERE state = 'queued' AND waiting_on = 0 AND limit_key IS NOT NULL
            AND op = keys.op AND limit_key > keys.limit_key
    )
    FROM keys WHERE keys.limit_key IS NOT NULL
)
SELECT op, limit_key FROM keys WHERE limit_key IS NOT NULL
UNION ALL
SELECT wanted.value, NULL FROM json_each(:ops) AS wanted
WHERE EXISTS (SELECT 1 FROM limits WHERE name = 'op:' || wanted.value)

-- name: claim_free_candidates
-- The best :limit runnable jobs of one operation without limits (as claim_jobs picks
-- them), when an op: limit or jobs with limits make the claim pick in steps.
SELECT seq, priority FROM (
    SELECT seq, priority FROM jobs INDEXED BY jobs_claim
    WHERE state = 'queued' AND waiting_on = 0 AND requires IS NULL AND limit_key IS NULL
        AND op = :op AND run_at <= :now
    ORDER BY priority DESC, seq
    LIMIT :limit
)
UNION ALL
SELECT seq, priority FROM (
    SELECT seq, priority FROM jobs INDEXED BY jobs_claim_required_free
    WHERE :labels IS NOT NULL AND state = 'queued' AND waiting_on = 0
        AND requires IS NOT NULL AND limit_key IS NULL
        AND op = :op AND run_at <= :now
        AND NOT EXISTS (
            SELECT 1 FROM json_each(requires) AS needed
            WHERE NOT EXISTS (
                SELECT 1 FROM json_each(needed.value) AS allowed
                WHERE allowed.value = json_extract(:labels, '$."' || needed.key || '"')
            )
        )
    ORDER BY priority DESC, seq
    LIMIT :limit
)

-- name: claim_limited_candidates
-- The best :limit runnable jobs of one operation and one limit_key whose limits all
-- have room (the caller asks only for those), with the bot's labels checked.
SELECT seq, priority FROM jobs INDEXED BY jobs_claim_limited
WHERE state = 'queued' AND waiting_on = 0 AND limit_key IS NOT NULL
    AND op = :op AND limit_key = :limit_key AND run_at <= :now
    AND (requires IS NULL OR (:labels IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM json_each(requires) AS needed
        WHERE NOT EXISTS (
            SELECT 1 FROM json_each(needed.value) AS allowed
            WHERE allowed.value = json_extract(:labels, '$."' || needed.key || '"')
        )
    )))
ORDER BY priority DESC, seq
LIMIT :limit

-- name: take_jobs
-- The jobs a stepwise claim chose, started as claim_jobs starts them.
UPDATE jobs SET
    state = 'running',
    attempt = attempt + 1,
    bot_id = :bot_id,
    started_at = :now,
    lease_until = :now + CAST(max(:ttl_s, coalesce(timeout_s, :default_timeout_s, 0)) * 1000000 AS INTEGER),
    seen_at = NULL,
    progress = NULL,
    progress_message = NULL
WHERE seq IN (SELECT value FROM json_each(:seqs)) AND state = 'queued'
RETURNING *

-- ---------------------------------------------------------------- prefetch: releases

-- name: jobs_for_release
SELECT id, op, state, attempt, bot_id FROM jobs
WHERE id IN (SELECT value FROM json_each(:ids))

-- name: unstarted_attempts_of_bot
-- The attempts of these jobs this bot gave back already: a repeated release is answered
-- as the first one was.
SELECT job_id, attempt FROM attempts
WHERE job_id IN (SELECT value FROM json_each(:ids)) AND bot_id = :bot_id
  AND outcome = 'unstarted'

-- name: end_unstarted_attempt
-- Before `release_jobs`, while the job still runs under this attempt.
UPDATE attempts SET ended_at = :now, outcome = 'unstarted'
WHERE job_id = :job_id AND attempt = :attempt AND ended_at IS NULL

-- name: release_jobs
-- Queued again at once and uncharged (attempt_base goes up with the attempt), in its
-- place in the queue (its run_at and seq are kept). The WHERE is the fence.
UPDATE jobs SET state = 'queued', lease_until = NULL, attempt_base = attempt_base + 1
WHERE id = :job_id AND state = 'running' AND attempt = :attempt AND bot_id = :bot_id
