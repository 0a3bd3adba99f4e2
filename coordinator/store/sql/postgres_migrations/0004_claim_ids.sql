-- botfleet on PostgreSQL, version 4: a retried claim gets back what its lost answer held.
--
-- A bot sends a fresh `claim_id` with each claim and the same one again when it retries
-- a claim whose answer it could not read. Each attempt a claim starts records that id,
-- in the claim's own transaction, so a repeat finds the jobs already handed out for it
-- (whichever coordinator took the first one) instead of claiming more.
ALTER TABLE attempts ADD COLUMN claim_id text;

-- Only claims that carried an id are looked up, and only by that id.
CREATE INDEX attempts_claim_id ON attempts (claim_id) WHERE claim_id IS NOT NULL;
