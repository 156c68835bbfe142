-- stream-limit schema, version 3: a start for a viewer whose row holds its
-- limit's worth of leases, all expired, admits instead of failing.
--
-- Version 2's one-statement path read the upsert's RETURNING into `live`. When
-- the upsert's WHERE failed (the row already held `n` leases, live or not), no
-- row came back and `live` became NULL, not empty. If none of those leases was
-- live, the full decision then saw `cardinality(NULL) < n` as NULL, refused, and
-- wrote `leases = NULL`, which the NOT NULL column rejected: every start of that
-- viewer answered 500 until the sweeper moved the expired leases out. The
-- upsert now returns into its own variable, so `live` holds exactly the live
-- leases the full decision finds. Found by tests/tests/store_model.rs.
--
-- Only the function body changes (same signature and result), so instances of
-- the previous release keep working against this schema.

-- Decides a start. Returns one `verdict` row (`prior` | `admit` | `evict` |
-- `refuse`, the limit, the active count after the decision, the prior
-- stream's end reason if any), plus `lease` rows (the admitted or replayed
-- lease, or every active lease on a refusal) and `evicted` rows.
CREATE OR REPLACE FUNCTION stream_limit_start(
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
    appended stream_lease[];
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
        RETURNING cur.leases, coalesce(cur.max_streams, p_limit) INTO appended, n;
        IF FOUND THEN
            live := appended;
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
