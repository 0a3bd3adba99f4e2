-- botfleet on PostgreSQL, version 17: a bot may give back prefetched jobs it never
-- started.
--
-- The attempt history gains the outcome `unstarted`: an attempt handed out under a
-- prefetch claim and released before the bot began it. It is not charged against the
-- job's max_attempts and not listed among the job's attempts (nothing ran); it is kept
-- so that a repeated release is answered as the first.
--
-- A bot's `held`: the jobs its last heartbeat listed as held (prefetched, not started;
-- NULL: none), so its view does not count them as running.
ALTER TABLE bots ADD COLUMN held jsonb;
ALTER TABLE attempts
    DROP CONSTRAINT attempts_outcome_check,
    ADD CONSTRAINT attempts_outcome_check CHECK (outcome IN (
        'succeeded', 'failed', 'expired', 'released', 'cancelled', 'lost', 'revoked',
        'unstarted'
    ));
