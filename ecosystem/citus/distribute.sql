-- Distributes stream-limit's tables on Citus, by viewer. Run it once, on the
-- coordinator, in the database (and schema, via search_path) that the
-- service's migrations created: `stream-limit-http migrate` first, then
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f ecosystem/citus/distribute.sql
--
-- then start the service with `store.citus = true`
-- (STREAM_LIMIT__STORE__CITUS=true). `tests/src/postgres.rs` runs this file,
-- as it is, before every test of `scripts/test-citus`; see ecosystem/SCALING.md.

-- Both tables by viewer, in one colocation group: a viewer's row and its
-- history live on the same shard, so a batch is a transaction on one worker.
SELECT create_distributed_table('viewers', 'viewer');
SELECT create_distributed_table('stream_history', 'viewer', colocate_with => 'viewers');

-- The store's clock, called inside statements that Citus routes to a worker:
-- it must exist there, and it is read there, after the row locks.
SELECT create_distributed_function('stream_limit_now()');
