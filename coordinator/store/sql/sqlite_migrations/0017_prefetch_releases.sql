-- botfleet on SQLite, version 17: a bot may give back prefetched jobs it never started.
--
-- A bot's `held`: the jobs its last heartbeat listed as held (prefetched, not started;
-- a JSON list, NULL: none), so its view does not count them as running.
ALTER TABLE bots ADD COLUMN held TEXT;
--
-- The attempt history gains the outcome `unstarted`: an attempt handed out under a
-- prefetch claim and released before the bot began it. It is not charged against the
-- job's max_attempts and not listed among the job's attempts (nothing ran); it is kept
-- so that a repeated release is answered as the first. SQLite cannot change a CHECK
-- constraint in place: the table is built again (nothing refers to it), with its index.
CREATE TABLE attempts_v17 (
    job_id      TEXT NOT NULL REFERENCES jobs (id),
    attempt     INTEGER NOT NULL,
    bot_id      TEXT NOT NULL REFERENCES bots (id),
    claimed_at  INTEGER NOT NULL,
    lease_until INTEGER NOT NULL,
    ended_at    INTEGER,
    outcome     TEXT CHECK (outcome IN (
        'succeeded', 'failed', 'expired', 'released', 'cancelled', 'lost', 'revoked',
        'unstarted'
    )),
    claim_id    TEXT,
    error       TEXT,
    PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;

INSERT INTO attempts_v17 (
    job_id, attempt, bot_id, claimed_at, lease_until, ended_at, outcome, claim_id, error
)
SELECT job_id, attempt, bot_id, claimed_at, lease_until, ended_at, outcome, claim_id, error
FROM attempts;

DROP TABLE attempts;

ALTER TABLE attempts_v17 RENAME TO attempts;

CREATE INDEX attempts_claim_id ON attempts (claim_id) WHERE claim_id IS NOT NULL;
