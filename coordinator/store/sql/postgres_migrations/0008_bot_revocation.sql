-- botfleet on PostgreSQL, version 8: an operator may revoke a bot.
--
-- `revoked_at` set: the bot's token is refused, its bot_key may not register again and
-- its reports are stale, until an operator allows it again (NULL). A revoked bot is
-- kept by the retention sweep, so its ban does not lapse with time.
ALTER TABLE bots ADD COLUMN revoked_at timestamptz;

-- The attempt history gains the outcome `revoked`: the attempts a revocation ended,
-- whose reports are stale.
ALTER TABLE attempts
    DROP CONSTRAINT attempts_outcome_check,
    ADD CONSTRAINT attempts_outcome_check CHECK (outcome IN (
        'succeeded', 'failed', 'expired', 'released', 'cancelled', 'lost', 'revoked'
    ));
