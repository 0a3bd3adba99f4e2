-- botfleet on SQLite, version 8: an operator may revoke a bot.
--
-- `revoked_at` set: the bot's token is refused, its bot_key may not register again and
-- its reports are stale, until an operator allows it again (NULL). A revoked bot is
-- kept by the retention sweep, so its ban does not lapse with time.
ALTER TABLE bots ADD COLUMN revoked_at INTEGER;

-- The attempt history gains the outcome `revoked`: the attempts a revocation ended,
-- whose reports are stale. SQLite cannot change a CHECK constraint in place: the table
-- is built again (nothing refers to it), with its index.
CREATE TABLE attempts_v8 (
    job_id      TEXT NOT NULL REFERENCES jobs (id),
    attempt     INTEGER NOT NULL,
    bot_id      TEXT NOT NULL REFERENCES bots (id),
    claimed_at  INTEGER NOT NULL,
    lease_until INTEGER NOT NULL,
    ended_at    INTEGER,
    outcome     TEXT CHECK (outcome IN (
        'succeeded', 'failed', 'expired', 'released', 'cancelled', 'lost', 'revoked'
    )),
    claim_id    TEXT,
    PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;

INSERT INTO attempts_v8 (
    job_id, attempt, bot_id, claimed_at, lease_until, ended_at, outcome, claim_id
)
SELECT job_id, attempt, bot_id, claimed_at, lease_until, ended_at, outcome, claim_id
FROM attempts;

DROP TABLE attempts;

ALTER TABLE attempts_v8 RENAME TO attempts;

CREATE INDEX attempts_claim_id ON attempts (claim_id) WHERE claim_id IS NOT NULL;
