-- botfleet on SQLite, version 12: schedules.
--
-- A schedule makes a job from its template (`job`, a submit body as JSON) at each due
-- time, by `cron` (in `timezone`) or `every_s`. `next_run_at` is the next due time, NULL
-- while paused; firing moves it past the present in the same transaction that inserts
-- the job, so each due time makes one job whichever coordinator fires it, and times
-- missed while no coordinator ran make one job, not one each.

CREATE TABLE schedules (
    name        TEXT PRIMARY KEY,
    cron        TEXT,
    every_s     INTEGER,
    timezone    TEXT NOT NULL,
    job         TEXT NOT NULL,
    paused      INTEGER NOT NULL DEFAULT 0,
    next_run_at INTEGER,
    last_due_at INTEGER,
    last_job_id TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    CHECK ((cron IS NULL) <> (every_s IS NULL))
) WITHOUT ROWID;

CREATE INDEX schedules_due ON schedules (next_run_at) WHERE next_run_at IS NOT NULL;
