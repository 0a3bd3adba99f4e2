-- botfleet on SQLite, version 2: the operator's quarantine of a bot, kept until `release`.
--
-- `pending_command` only lasts until the bot shows that a command took hold, so it
-- cannot say whether an operator's quarantine is still in force; a claim hands out
-- nothing while it is (rules.claims_withheld). A quarantine pending at the upgrade
-- counts; one already delivered shows in the lifecycle the bot reports.
ALTER TABLE bots ADD COLUMN quarantined INTEGER NOT NULL DEFAULT 0 CHECK (quarantined IN (0, 1));

UPDATE bots SET quarantined = 1 WHERE pending_command = 'quarantine';
