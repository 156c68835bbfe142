-- stream-limit schema, version 2: a viewer's leases live in its own row, and
-- each operation is one function call.
--
-- Why: in version 1 a start locked the viewer's row, then inserted a lease row
-- (a heap tuple and two index entries), in a four-statement transaction. Now
-- it locks the row and rewrites it in place (a HOT update when the page has
-- room: no index entry at all), inside one function call: one statement, one
-- implicit transaction, one network round trip. The locking argument is the
-- same as before and is written up in
-- stream-limit-core/src/store/postgres/sql.rs.

CREATE TYPE stream_lease AS (
    stream_id   uuid,
    started_at  timestamptz,
    expires_at  timestamptz,
    ttl_ms      bigint,
    device_id   text,
    content_id  text
);

-- `leases`: the viewer's leases that have not been ended, oldest first
-- (appends happen under the row lock at increasing decision times). Expired
-- ones wait here, not counting, until a start or the sweeper moves them to
-- history.
-- `sweep_after`: a time at or before the earliest expiry in `leases` (NULL:
-- nothing to sweep). Starts only ever lower it and the sweeper recomputes it,
-- so most writes leave every indexed column alone and stay HOT.
ALTER TABLE viewers
    ADD COLUMN leases stream_lease[] NOT NULL DEFAULT '{}',
    ADD COLUMN sweep_after timestamptz;
-- Room on each page for the new version of a row: updates stay HOT.
ALTER TABLE viewers SET (fillfactor = 80);

INSERT INTO viewers (viewer, started)
SELECT DISTINCT viewer, true FROM leases
ON CONFLICT (viewer) DO NOTHING;
UPDATE viewers v
   SET leases = l.leases, sweep_after = l.first_expiry
  FROM (SELECT viewer,
               array_agg(ROW(stream_id, started_at, expires_at, ttl_ms, device_id, content_id)::stream_lease
                         ORDER BY started_at, stream_id) AS leases,
               min(expires_at) AS first_expiry
          FROM leases GROUP BY viewer) l
 WHERE v.viewer = l.viewer;
DROP TABLE leases;

CREATE INDEX viewers_sweep_after ON viewers (sweep_after) WHERE sweep_after IS NOT NULL;

-- Locks the viewer's row and returns its latest version; with `p_create`, a
-- missing row is created first. Without it, a missing row comes back as all
-- NULLs (nothing to lock: the viewer has no leases and no history).
-- SELECT ... FOR UPDATE waits for the current holder, then returns the version
-- that holder committed; if the sweeper deleted the row meanwhile, the loop
-- re-creates it, so waiters stay serialised.
CREATE FUNCTION stream_limit_lock(p_viewer text, p_create boolean) RETURNS viewers
    LANGUAGE plpgsql AS $$
DECLARE
    v viewers;
BEGIN
    LOOP
        SELECT * INTO v FROM viewers WHERE viewer = p_viewer FOR UPDATE;
        IF FOUND OR NOT p_create THEN
            RETURN v;
        END IF;
        INSERT INTO viewers (viewer) VALUES (p_viewer) ON CONFLICT (viewer) DO NOTHING;
    END LOOP;
END $$;

-- Records leases in history as ended at `p_at` (NULL: at their own expiry).
-- A stream id is in a viewer's `leases` or in `stream_history`, never both,
-- so the conflict clause only keeps a bug from turning into a failed request.
CREATE FUNCTION stream_limit_record(p_viewer text, p_leases stream_lease[], p_at timestamptz, p_reason text)
    RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- PL/pgSQL, not SQL: a PL/pgSQL function keeps its plans for the session,
    -- where an SQL function called from PL/pgSQL is parsed again on every call.
    INSERT INTO stream_history (viewer, stream_id, started_at, ended_at, reason, device_id, content_id)
    SELECT p_viewer, l.stream_id, l.started_at, coalesce(p_at, l.expires_at), p_reason, l.device_id, l.content_id
      FROM unnest(p_leases) l
    ON CONFLICT (viewer, stream_id) DO NOTHING;
END $$;

-- The decision functions below return rows of (kind, lease, ...): the caller
-- expands `lease` into columns. Rows are emitted with RETURN NEXT, which
-- costs nothing like a query; every SQL statement in PL/pgSQL pays executor
-- set-up, so the common paths run as few as possible.

-- Why the viewer's stream `p_stream` ended, from history; NULL if it has no
-- history (it never existed, or is still in the viewer's row).
CREATE FUNCTION stream_limit_past_reason(p_viewer text, p_stream uuid) RETURNS text
    LANGUAGE plpgsql AS $$
BEGIN
    RETURN (SELECT h.reason FROM stream_history h WHERE h.viewer = p_viewer AND h.stream_id = p_stream);
END $$;

-- A new lease starting now, by the store's clock: in an upsert's SET clause
-- it is evaluated once the row is locked.
CREATE FUNCTION stream_limit_new_lease(p_stream uuid, p_ttl_ms bigint, p_device text, p_content text)
    RETURNS stream_lease LANGUAGE plpgsql AS $$
DECLARE
    t timestamptz := stream_limit_now();
BEGIN
    RETURN ROW(p_stream, t, t + p_ttl_ms * interval '1 millisecond', p_ttl_ms, p_device, p_content);
END $$;

-- Decides a start. Returns one `verdict` row (`prior` | `admit` | `evict` |
-- `refuse`, the limit, the active count after the decision, the prior
-- stream's end reason if any), plus `lease` rows (the admitted or replayed
-- lease, or every active lease on a refusal) and `evicted` rows.
CREATE FUNCTION stream_limit_start(
    p_viewer text, p_stream uuid, p_fresh boolean, p_ttl_ms bigint, p_limit integer,
    p_evict boolean, p_device text, p_content text)
    RETURNS TABLE (kind text, lease stream_lease, verdict text, max_streams bigint,
                   active_count bigint, reason text)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v viewers;
    t timestamptz;
    n integer;
    l stream_lease;
    live stream_lease[] := '{}';
    expired stream_lease[] := '{}';
    evicted stream_lease[] := '{}';
    shown stream_lease[] := '{}';
    prior boolean := false;
    prior_reason text;
BEGIN
    -- The common case in one statement: a stream id generated for this
    -- request (so it cannot be a replay) for a viewer with fewer leases than
    -- its limit, live or not (so admitting cannot exceed it, whatever the
    -- clock says). The upsert locks the row and evaluates WHERE and SET on
    -- its latest version; the new lease reads the clock in SET, after the
    -- lock. If WHERE fails the row stays locked and the full path below
    -- decides, pruning expired leases: so this path keeps at most `n` leases
    -- in the row and never needs to prune.
    IF p_fresh THEN
        -- Used only when the viewer has no row yet (no earlier decision to
        -- order after); an existing row gets a lease made under its lock.
        t := stream_limit_now();
        l := ROW(p_stream, t, t + p_ttl_ms * interval '1 millisecond', p_ttl_ms, p_device, p_content);
        INSERT INTO viewers AS cur (viewer, started, leases, sweep_after)
        VALUES (p_viewer, true, ARRAY[l], l.expires_at)
        ON CONFLICT (viewer) DO UPDATE
           SET leases = cur.leases || stream_limit_new_lease(p_stream, p_ttl_ms, p_device, p_content),
               started = true,
               sweep_after = least(cur.sweep_after, EXCLUDED.sweep_after)
         WHERE cardinality(cur.leases) < coalesce(cur.max_streams, p_limit)
        RETURNING cur.leases, coalesce(cur.max_streams, p_limit) INTO live, n;
        IF FOUND THEN
            t := (live[cardinality(live)]).started_at;
            active_count := 0;
            FOREACH l IN ARRAY live LOOP
                IF l.expires_at > t THEN active_count := active_count + 1; END IF;
            END LOOP;
            kind := 'verdict'; verdict := 'admit'; max_streams := n;
            RETURN NEXT;
            kind := 'lease'; lease := live[cardinality(live)];
            verdict := NULL; max_streams := NULL; active_count := NULL;
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;

    v := stream_limit_lock(p_viewer, true);
    t := stream_limit_now();   -- read under the lock
    n := coalesce(v.max_streams, p_limit);
    FOREACH l IN ARRAY v.leases LOOP
        IF l.expires_at > t THEN
            live := live || l;
        ELSE
            expired := expired || l;
        END IF;
        IF l.stream_id = p_stream THEN
            prior := true;
            IF l.expires_at > t THEN shown := ARRAY[l]; ELSE prior_reason := 'expired'; END IF;
        END IF;
    END LOOP;
    IF NOT prior AND NOT p_fresh THEN
        prior_reason := stream_limit_past_reason(p_viewer, p_stream);
        prior := prior_reason IS NOT NULL;
    END IF;

    verdict := CASE WHEN prior THEN 'prior'
                    WHEN cardinality(live) < n THEN 'admit'
                    WHEN p_evict THEN 'evict'
                    ELSE 'refuse' END;
    IF verdict IN ('admit', 'evict') THEN
        IF verdict = 'evict' THEN
            evicted := live[1 : cardinality(live) - n + 1];
            live := live[cardinality(live) - n + 2 :];
        END IF;
        l := ROW(p_stream, t, t + p_ttl_ms * interval '1 millisecond', p_ttl_ms, p_device, p_content);
        shown := ARRAY[l];
        live := live || l;
        UPDATE viewers
           SET leases = live, started = true, sweep_after = least(sweep_after, l.expires_at)
         WHERE viewer = p_viewer;
    ELSIF cardinality(expired) > 0 THEN
        UPDATE viewers SET leases = live WHERE viewer = p_viewer;
    END IF;
    IF verdict = 'refuse' THEN
        shown := live;
    END IF;
    IF cardinality(expired) > 0 THEN
        PERFORM stream_limit_record(p_viewer, expired, NULL, 'expired');
    END IF;
    IF cardinality(evicted) > 0 THEN
        PERFORM stream_limit_record(p_viewer, evicted, t, 'evicted');
    END IF;

    kind := 'verdict';
    max_streams := n;
    active_count := cardinality(live);
    reason := prior_reason;
    RETURN NEXT;
    verdict := NULL; max_streams := NULL; active_count := NULL; reason := NULL;
    kind := 'lease';
    FOREACH lease IN ARRAY shown LOOP
        RETURN NEXT;
    END LOOP;
    kind := 'evicted';
    FOREACH lease IN ARRAY evicted LOOP
        RETURN NEXT;
    END LOOP;
END $$;

-- Extends a live lease. Returns at most one row: `extended` with the lease,
-- or `gone` with the reason it stopped counting.
CREATE FUNCTION stream_limit_heartbeat(p_viewer text, p_stream uuid)
    RETURNS TABLE (kind text, lease stream_lease, reason text)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v viewers := stream_limit_lock(p_viewer, false);
    t timestamptz := stream_limit_now();
    l stream_lease;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(v.leases), 0) LOOP
        l := v.leases[i];
        CONTINUE WHEN l.stream_id <> p_stream;
        IF l.expires_at <= t THEN
            kind := 'gone'; lease := l; reason := 'expired';
            RETURN NEXT;
            RETURN;
        END IF;
        l.expires_at := t + l.ttl_ms * interval '1 millisecond';
        v.leases[i] := l;
        UPDATE viewers SET leases = v.leases WHERE viewer = p_viewer;
        kind := 'extended'; lease := l;
        RETURN NEXT;
        RETURN;
    END LOOP;
    reason := stream_limit_past_reason(p_viewer, p_stream);
    IF reason IS NOT NULL THEN
        kind := 'gone';
        RETURN NEXT;
    END IF;
END $$;

-- Ends lease number `p_at` of `p_leases`, the viewer's locked row, at `t`:
-- writes the row back without it and records it in history for `p_reason`.
-- Returns how many of the other leases are live at `t`.
CREATE FUNCTION stream_limit_drop(
    p_viewer text, p_leases stream_lease[], p_at integer, t timestamptz, p_reason text)
    RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    keep stream_lease[] := p_leases[: p_at - 1] || p_leases[p_at + 1 :];
    l stream_lease;
    live bigint := 0;
BEGIN
    FOREACH l IN ARRAY keep LOOP
        IF l.expires_at > t THEN live := live + 1; END IF;
    END LOOP;
    UPDATE viewers SET leases = keep WHERE viewer = p_viewer;
    PERFORM stream_limit_record(p_viewer, ARRAY[p_leases[p_at]], t, p_reason);
    RETURN live;
END $$;

-- Ends one live lease, recording `p_reason` (`ended` | `revoked`). Returns at
-- most one row: `ended` with the lease and the active count after, or `gone`
-- with the reason it had already stopped counting.
CREATE FUNCTION stream_limit_end(p_viewer text, p_stream uuid, p_reason text)
    RETURNS TABLE (kind text, lease stream_lease, reason text, active_count bigint)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v viewers := stream_limit_lock(p_viewer, false);
    t timestamptz := stream_limit_now();
BEGIN
    FOR i IN 1 .. coalesce(cardinality(v.leases), 0) LOOP
        CONTINUE WHEN (v.leases[i]).stream_id <> p_stream;
        lease := v.leases[i];
        IF lease.expires_at <= t THEN
            kind := 'gone'; reason := 'expired';
        ELSE
            kind := 'ended'; active_count := stream_limit_drop(p_viewer, v.leases, i, t, p_reason);
        END IF;
        RETURN NEXT;
        RETURN;
    END LOOP;
    reason := stream_limit_past_reason(p_viewer, p_stream);
    IF reason IS NOT NULL THEN
        kind := 'gone';
        RETURN NEXT;
    END IF;
END $$;

-- Ends the least recently started live lease. Returns an `ended` row (lease,
-- active count after), else a `known` row when the viewer ever started a
-- stream (or still has any trace), else nothing.
CREATE FUNCTION stream_limit_end_oldest(p_viewer text)
    RETURNS TABLE (kind text, lease stream_lease, active_count bigint)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v viewers := stream_limit_lock(p_viewer, false);
    t timestamptz := stream_limit_now();
BEGIN
    IF v.viewer IS NULL THEN
        RETURN;
    END IF;
    -- `leases` is oldest first, so the first live one is the oldest.
    FOR i IN 1 .. cardinality(v.leases) LOOP
        CONTINUE WHEN (v.leases[i]).expires_at <= t;
        kind := 'ended';
        lease := v.leases[i];
        active_count := stream_limit_drop(p_viewer, v.leases, i, t, 'ended');
        RETURN NEXT;
        RETURN;
    END LOOP;
    IF v.started OR cardinality(v.leases) > 0
       OR EXISTS (SELECT 1 FROM stream_history h WHERE h.viewer = p_viewer) THEN
        kind := 'known';
        RETURN NEXT;
    END IF;
END $$;

-- Moves the leases that expired more than `p_grace_ms` ago, of up to
-- `p_batch` viewers, to history. Returns how many moved. Rows another
-- transaction holds are skipped (SKIP LOCKED), so several instances can sweep
-- at once; FOR UPDATE returns a locked row's latest version, so a lease a
-- heartbeat just extended is seen extended and kept.
CREATE FUNCTION stream_limit_sweep_expired(p_batch bigint, p_grace_ms bigint) RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz := stream_limit_now() - p_grace_ms * interval '1 millisecond';
    v record;
    l stream_lease;
    keep stream_lease[];
    gone stream_lease[];
    moved bigint := 0;
BEGIN
    FOR v IN SELECT viewer, leases FROM viewers
              WHERE sweep_after <= cutoff
              ORDER BY sweep_after LIMIT p_batch
                FOR UPDATE SKIP LOCKED
    LOOP
        keep := '{}';
        gone := '{}';
        FOREACH l IN ARRAY v.leases LOOP
            IF l.expires_at <= cutoff THEN gone := gone || l; ELSE keep := keep || l; END IF;
        END LOOP;
        UPDATE viewers
           SET leases = keep, sweep_after = (SELECT min(k.expires_at) FROM unnest(keep) k)
         WHERE viewer = v.viewer;
        IF cardinality(gone) > 0 THEN
            PERFORM stream_limit_record(v.viewer, gone, NULL, 'expired');
            moved := moved + cardinality(gone);
        END IF;
    END LOOP;
    RETURN moved;
END $$;
