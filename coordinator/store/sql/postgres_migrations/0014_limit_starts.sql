-- botfleet on PostgreSQL, version 14: the rate jobs start at under each limit.
--
-- Each claim that starts jobs under a limit counts them here, in its own transaction
-- and under the limit's row lock it already holds, so the rate is right with several
-- coordinators: `window_starts` in the window that began at `window_at` (a multiple of
-- the window), `previous_starts` in the one before. The rate over the last window is
-- read from the two (a sliding-window estimate).

ALTER TABLE limits ADD COLUMN window_at timestamptz NOT NULL DEFAULT to_timestamp(0);
ALTER TABLE limits ADD COLUMN window_starts integer NOT NULL DEFAULT 0;
ALTER TABLE limits ADD COLUMN previous_starts integer NOT NULL DEFAULT 0;
