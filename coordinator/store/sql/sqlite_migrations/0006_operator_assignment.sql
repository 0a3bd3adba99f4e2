-- botfleet on SQLite, version 6: an operator's assignment outlasts re-registration.
--
-- `operations` and `max_concurrency` stay the assignment in force (claims read them).
-- What an operator chose is kept beside them, so a re-registration keeps it and only
-- the fields the operator never chose follow what the bot asks. `paused` is the
-- operator's alone already: a bot never asks to be paused.

-- The operator's operations (a JSON list) and concurrency; NULL follows the bot.
ALTER TABLE bots ADD COLUMN operator_operations TEXT;
ALTER TABLE bots ADD COLUMN operator_max_concurrency INTEGER;

-- The concurrency the bot itself asked for at its last registration, which an
-- operator's hand-back returns to.
ALTER TABLE bots ADD COLUMN bot_max_concurrency INTEGER;
UPDATE bots SET bot_max_concurrency = max_concurrency;
