-- botfleet on PostgreSQL, version 12: schedules.
--
-- A schedule makes a job from its template (`job`, a submit body as JSON) at each due
-- time, by `cron` (in `timezone`) or `every_s`. `next_run_at` is the next due time, NULL
-- while paused; firing locks the row, moves it past the present and inserts the job in
-- one transaction, so each due time makes one job whichever coordinator fires it, and
-- times missed while no coordinator ran make one job, not one each.

CREATE TABLE schedules (
    name        text PRIMARY KEY,
    cron        text,
    every_s     integer,
    timezone    text NOT NULL,
    job         json NOT NULL,
    paused      boolean NOT NULL DEFAULT false,
    next_run_at timestamptz,
    last_due_at timestamptz,
    last_job_id text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    CHECK ((cron IS NULL) <> (every_s IS NULL))
);

CREATE INDEX schedules_due ON schedules (next_run_at) WHERE next_run_at IS NOT NULL;
