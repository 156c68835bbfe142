-- stream-limit schema, version 1. Released migrations are never edited;
-- add V2__... instead.
--
-- Every table is keyed by `viewer` first (`user:<id>` or `session:<id>`), and
-- every statement the service runs on a request filters on it, so the tables
-- can be distributed by viewer (Citus) without cross-shard transactions.

-- One row per viewer: the lock that serialises that viewer's decisions, its
-- optional limit override, and whether it ever started a stream (the seed
-- endstream tells "no active stream" from "never seen").
CREATE TABLE viewers (
    viewer       text        PRIMARY KEY,
    max_streams  integer     CHECK (max_streams BETWEEN 1 AND 1000),
    started      boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- The sweeper forgets idle viewers by age.
CREATE INDEX viewers_created_at ON viewers (created_at);

-- Leases that have not been ended. A lease counts while expires_at is in the
-- future by the database clock; expired rows wait here for the sweeper.
CREATE TABLE leases (
    viewer      text        NOT NULL,
    stream_id   uuid        NOT NULL,
    started_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    ttl_ms      bigint      NOT NULL CHECK (ttl_ms > 0),
    device_id   text,
    content_id  text,
    PRIMARY KEY (viewer, stream_id)
);
CREATE INDEX leases_expires_at ON leases (expires_at);

-- What happened to each stream, kept for the configured retention.
CREATE TABLE stream_history (
    viewer      text        NOT NULL,
    stream_id   uuid        NOT NULL,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz NOT NULL,
    reason      text        NOT NULL CHECK (reason IN ('ended', 'expired', 'evicted', 'revoked')),
    device_id   text,
    content_id  text,
    PRIMARY KEY (viewer, stream_id)
);
CREATE INDEX stream_history_viewer_ended_at ON stream_history (viewer, ended_at DESC);
CREATE INDEX stream_history_ended_at ON stream_history (ended_at);

-- The store's clock. Every expiry decision reads it once, after the viewer's
-- lock is held (see stream-limit-core/src/store/postgres/sql.rs for why it is
-- clock_timestamp() and not now()). A function, so tests can shift time in
-- their own throwaway database instead of sleeping.
CREATE FUNCTION stream_limit_now() RETURNS timestamptz
    LANGUAGE sql VOLATILE PARALLEL SAFE
    AS $$ SELECT clock_timestamp() $$;
