-- botfleet on SQLite, version 3: claim answers that never reached the bot.
--
-- A heartbeat lists the jobs the bot runs. A job handed to a bot before its previous
-- heartbeat arrived, listed neither by that heartbeat nor by the next, never reached
-- the bot: it is queued again at once, and its attempt ends as `lost`. That attempt
-- is not charged: `attempt_base` goes up with it, so `attempt - attempt_base` (the
-- attempts spent of max_attempts) stays, while the attempt number, the fencing token,
-- still rises at the next claim.

-- When the holder's heartbeat last listed the job, in its current attempt (NULL: not
-- yet); a claim clears it.
ALTER TABLE jobs ADD COLUMN seen_at INTEGER;

-- The attempt history gains the outcome `lost`. SQLite cannot change a CHECK
-- constraint in place: the table is built again (nothing refers to it).
CREATE TABLE attempts_v3 (
    job_id      TEXT NOT NULL REFERENCES jobs (id),
    attempt     INTEGER NOT NULL,
    bot_id      TEXT NOT NULL REFERENCES bots (id),
    claimed_at  INTEGER NOT NULL,
    lease_until INTEGER NOT NULL,
    ended_at    INTEGER,
    outcome     TEXT
        CHECK (outcome IN ('succeeded', 'failed', 'expired', 'released', 'cancelled', 'lost')),
    PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;

INSERT INTO attempts_v3 (job_id, attempt, bot_id, claimed_at, lease_until, ended_at, outcome)
SELECT job_id, attempt, bot_id, claimed_at, lease_until, ended_at, outcome FROM attempts;

DROP TABLE attempts;

ALTER TABLE attempts_v3 RENAME TO attempts;
