-- botfleet on PostgreSQL, version 3: claim answers that never reached the bot.
--
-- A heartbeat lists the jobs the bot runs. A job handed to a bot before its previous
-- heartbeat arrived, listed neither by that heartbeat nor by the next, never reached
-- the bot: it is queued again at once, and its attempt ends as `lost`. That attempt
-- is not charged: `attempt_base` goes up with it, so `attempt - attempt_base` (the
-- attempts spent of max_attempts) stays, while the attempt number, the fencing token,
-- still rises at the next claim.

-- When the holder's heartbeat last listed the job, in its current attempt (NULL: not
-- yet); a claim clears it.
ALTER TABLE jobs ADD COLUMN seen_at timestamptz;

ALTER TABLE attempts
    DROP CONSTRAINT attempts_outcome_check,
    ADD CONSTRAINT attempts_outcome_check
        CHECK (outcome IN ('succeeded', 'failed', 'expired', 'released', 'cancelled', 'lost'));
