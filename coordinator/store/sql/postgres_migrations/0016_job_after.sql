-- botfleet on PostgreSQL, version 14: each job keeps the `after` it was submitted with.
--
-- job_dependencies holds only the links still open (a dependency's end deletes them), so
-- the job view could not say what a job waited for once it had. `after_ids` is the
-- resolved list (a JSON array of job ids, in the submit's order); NULL: none, as for
-- most jobs. Written once, at submit; no index reads it.

ALTER TABLE jobs ADD COLUMN after_ids jsonb;
