-- stream-limit schema, version 4: a stream can end because another start of
-- its viewer took it over (`replaced`).
--
-- The check is widened, not rewritten: every existing row passed the narrower
-- check, so it passes this one, and `NOT VALID` skips rescanning a history
-- table that may hold millions of rows while this migration's lock is held.
-- New rows are checked as before.
--
-- Instances of the previous release keep working on this schema. They cannot
-- read a `replaced` history entry ("unknown end reason"), so take-overs should
-- wait until every instance runs this release (see the README, "Upgrading").
-- The ALTER needs a short exclusive lock on `stream_history`. Waiting for it
-- behind a long transaction would queue every decision behind the ALTER, so
-- it gives up after 2 s instead; startup retries the migration.
SET LOCAL lock_timeout = '2s';

ALTER TABLE stream_history
    DROP CONSTRAINT stream_history_reason_check,
    ADD CONSTRAINT stream_history_reason_check
        CHECK (reason IN ('ended', 'expired', 'evicted', 'revoked', 'replaced')) NOT VALID;
