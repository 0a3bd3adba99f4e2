-- botfleet on SQLite, version 15: the claim's index of jobs with requirements holds only
-- those without limits.
--
-- jobs_claim_required holds every claimable job with requirements, also those under a
-- limit, which a claim takes from jobs_claim_limited instead: behind a full limit,
-- thousands of them stood in front of the few a claim could take, and every claim of a
-- labelled bot stepped over them. The claims now read this index, which leaves them out;
-- jobs_claim_required stays for telling when a job is due.

CREATE INDEX jobs_claim_required_free ON jobs (op, priority DESC, seq, run_at)
    WHERE state = 'queued' AND waiting_on = 0 AND requires IS NOT NULL AND limit_key IS NULL;
