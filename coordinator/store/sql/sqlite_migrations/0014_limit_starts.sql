-- botfleet on SQLite, version 14: the rate jobs start at under each limit.
--
-- Each claim that starts jobs under a limit counts them here, in its own transaction,
-- so the rate is right with several coordinators: `window_starts` in the window that
-- began at `window_at` (a multiple of the window), `previous_starts` in the one before.
-- The rate over the last window is read from the two (a sliding-window estimate).

ALTER TABLE limits ADD COLUMN window_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE limits ADD COLUMN window_starts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE limits ADD COLUMN previous_starts INTEGER NOT NULL DEFAULT 0;
