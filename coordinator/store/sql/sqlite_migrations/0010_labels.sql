-- botfleet on SQLite, version 10: labels.
--
-- A bot's labels (JSON object, key -> value; NULL: none) and a job's requirements
-- (JSON object, key -> [allowed values]; NULL: none, as for most jobs). The claim
-- index splits in two: jobs without requirements (the fast path, never scanned past
-- a job some bot cannot take) and jobs with them (checked against the bot's labels).

ALTER TABLE bots ADD COLUMN labels TEXT;
ALTER TABLE jobs ADD COLUMN requires TEXT;

DROP INDEX jobs_claim;
CREATE INDEX jobs_claim ON jobs (op, priority DESC, seq, run_at)
    WHERE state = 'queued' AND requires IS NULL;
CREATE INDEX jobs_claim_required ON jobs (op, priority DESC, seq, run_at)
    WHERE state = 'queued' AND requires IS NOT NULL;
