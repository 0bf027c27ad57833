-- activityd schema, version 9: hash chains and checkpoints (issue 18).
--
-- Every change is linked into its user's chain by the statement that
-- records it (docs/evidence.md is the scheme): the functions below compute
-- an entry and a link exactly as domain/evidence.go does, so that a single
-- statement stays a single round trip.
--
-- activityd_chain runs after feed_head's row lock is taken (it reads the
-- positions that lock hands out), so chains are extended one writer at a
-- time and in position order. It is VOLATILE: its queries take a fresh
-- snapshot, and so read the heads the previous holder of the lock
-- committed, which the calling statement's own snapshot (taken before it
-- waited for the lock) would not show. chain_heads rows are only written
-- under feed_head's lock, so taking them after it never waits.
--
-- changes.digest is what the link covered of the metadata (recorded) or
-- of the erasure; changes.link the link. Both are NULL for a change made
-- with chaining off (EVIDENCE_CHAINS=false): verification names those.
-- Retention keeps the change rows of the months it drops (a tombstone of
-- ~100 bytes each: the links that later changes follow) and records in
-- pruned_before how far it went: a change whose event is gone and was
-- recorded before it is verified by its stored link; one recorded after
-- is a deleted event.
-- checkpoints keep the signed checkpoints; leaves (56 bytes per user: id,
-- position, count, link) only for the newest ones, for proofs.

-- +goose Up
ALTER TABLE changes ADD COLUMN digest bytea, ADD COLUMN link bytea;

CREATE TABLE chain_heads (
    user_id  bigint PRIMARY KEY,
    position bigint NOT NULL,
    count    bigint NOT NULL,
    link     bytea  NOT NULL
);

CREATE TABLE pruned_before (
    one    int         PRIMARY KEY CHECK (one = 1),
    before timestamptz NOT NULL
);

CREATE TABLE checkpoints (
    position  bigint      PRIMARY KEY,
    at        timestamptz NOT NULL,
    users     int         NOT NULL,
    root      bytea       NOT NULL,
    key_id    text        NOT NULL,
    signature bytea       NOT NULL,
    leaves    bytea
);

-- A string: its length in UTF-8 bytes, then those bytes.
-- +goose StatementBegin
CREATE FUNCTION activityd_text(s text) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT int4send(length(convert_to(coalesce(s, ''), 'UTF8'))) || convert_to(coalesce(s, ''), 'UTF8')
$$;
-- +goose StatementEnd

-- Unix microseconds, exact on every version (no floating point); none (NULL,
-- or Go's zero time, 0001-01-01 UTC, as domain/evidence.go encodes it): 0.
-- +goose StatementBegin
CREATE FUNCTION activityd_us(t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN t IS NULL OR t = '0001-01-01 00:00:00+00'::timestamptz THEN 0
                ELSE extract(epoch FROM date_trunc('second', t))::bigint * 1000000 + extract(microseconds FROM t)::bigint % 1000000 END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION activityd_micros(t timestamptz) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT int8send(activityd_us(t))
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION activityd_metadata_digest(md text) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256('activityd/metadata/v1'::bytea || '\x00'::bytea || convert_to(md, 'UTF8'))
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION activityd_erasure_digest(user_id bigint, from_us bigint, to_us bigint, n bigint, by_ text) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256('activityd/erasure/v1'::bytea || '\x00'::bytea || int8send(user_id) || int8send(from_us)
                  || int8send(to_us) || int8send(n) || activityd_text(by_))
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION activityd_entry(pos bigint, kind text, user_id bigint, event_id uuid, action text, status text,
                                occurred timestamptz, recorded timestamptz, at timestamptz, digest bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256('activityd/entry/v1'::bytea || '\x00'::bytea || int8send(pos) || activityd_text(kind)
                  || int8send(user_id) || uuid_send(event_id) || activityd_text(action) || activityd_text(status)
                  || activityd_micros(occurred) || activityd_micros(recorded) || activityd_micros(at)
                  || coalesce(digest, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea))
$$;
-- +goose StatementEnd

-- activityd_chain links entries (users[i]'s, at positions[i], in position
-- order) into their users' chains, moves the heads, and returns the links.
-- +goose StatementBegin
CREATE FUNCTION activityd_chain(users bigint[], positions bigint[], entries bytea[]) RETURNS bytea[]
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    links bytea[] := entries;
    r     record;
    cur   bigint;
    lnk   bytea;
    n     bigint;
    pos   bigint;
    hu    bigint[] := '{}';
    hp    bigint[] := '{}';
    hn    bigint[] := '{}';
    hl    bytea[]  := '{}';
BEGIN
    FOR r IN
        SELECT t.u, t.p, t.e, t.i, h.link AS hlink, h.count AS hcount
        FROM unnest(users, positions, entries) WITH ORDINALITY AS t(u, p, e, i)
        LEFT JOIN chain_heads h ON h.user_id = t.u
        ORDER BY t.u, t.p
    LOOP
        IF cur IS DISTINCT FROM r.u THEN
            IF cur IS NOT NULL THEN
                hu := array_append(hu, cur); hp := array_append(hp, pos);
                hn := array_append(hn, n);   hl := array_append(hl, lnk);
            END IF;
            cur := r.u;
            lnk := coalesce(r.hlink, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
            n := coalesce(r.hcount, 0);
        END IF;
        lnk := sha256('activityd/link/v1'::bytea || '\x00'::bytea || lnk || r.e);
        n := n + 1;
        pos := r.p;
        links[r.i] := lnk;
    END LOOP;
    IF cur IS NOT NULL THEN
        hu := array_append(hu, cur); hp := array_append(hp, pos);
        hn := array_append(hn, n);   hl := array_append(hl, lnk);
    END IF;
    INSERT INTO chain_heads (user_id, position, count, link)
    SELECT * FROM unnest(hu, hp, hn, hl)
    ON CONFLICT (user_id) DO UPDATE SET position = excluded.position, count = excluded.count, link = excluded.link;
    RETURN links;
END
$$;
-- +goose StatementEnd

-- The changes made before this version are chained as they stand now.
-- +goose StatementBegin
DO $$
DECLARE
    r record;
    d bytea;
    l bytea;
BEGIN
    LOCK TABLE feed_head IN EXCLUSIVE MODE;
    FOR r IN
        SELECT c.position, c.kind, c.user_id, c.event_id, c.at, c.status, c.detail,
               e.action, e.occurred_at, e.recorded_at, e.metadata::text AS md
        FROM changes c
        LEFT JOIN events e ON e.id = c.event_id AND e.recorded_at = c.event_recorded_at
        ORDER BY c.position
    LOOP
        d := CASE r.kind
            WHEN 1 THEN activityd_metadata_digest(r.md)
            WHEN 3 THEN activityd_erasure_digest(r.user_id,
                activityd_us((r.detail->>'from')::timestamptz), activityd_us((r.detail->>'to')::timestamptz),
                (r.detail->>'count')::bigint, r.detail->>'by')
        END;
        CONTINUE WHEN r.kind <> 3 AND r.action IS NULL; -- its event is gone: left unchained
        l := (activityd_chain(ARRAY[r.user_id], ARRAY[r.position], ARRAY[activityd_entry(r.position,
                CASE r.kind WHEN 1 THEN 'event.recorded' WHEN 2 THEN 'event.status_changed' ELSE 'user.erased' END,
                r.user_id, r.event_id, coalesce(r.action, ''), r.status,
                r.occurred_at, r.recorded_at, r.at, d)]))[1];
        UPDATE changes SET digest = d, link = l WHERE position = r.position;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- Retention before this version deleted a month's changes, leaving holes
-- among the positions of the feed: each is filled with an unchained
-- tombstone of no user (an event that retention removed), so verification
-- does not read them as deleted changes.
-- +goose StatementBegin
DO $$
BEGIN
    INSERT INTO changes (position, kind, event_id, event_recorded_at, user_id, at, status, updated_at)
    SELECT g, 1, '00000000-0000-0000-0000-000000000000', '-infinity', 0, 'epoch', '', 'epoch'
    FROM generate_series((SELECT coalesce(min(position), 1) FROM changes), (SELECT last FROM feed_head)) g
    WHERE NOT EXISTS (SELECT 1 FROM changes c WHERE c.position = g);
    IF FOUND THEN
        INSERT INTO pruned_before (one, before) VALUES (1, '0001-01-01 00:00:00+00');
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION activityd_chain(bigint[], bigint[], bytea[]);
DROP FUNCTION activityd_entry(bigint, text, bigint, uuid, text, text, timestamptz, timestamptz, timestamptz, bytea);
DROP FUNCTION activityd_erasure_digest(bigint, bigint, bigint, bigint, text);
DROP FUNCTION activityd_metadata_digest(text);
DROP FUNCTION activityd_micros(timestamptz);
DROP FUNCTION activityd_us(timestamptz);
DROP FUNCTION activityd_text(text);
DROP TABLE checkpoints;
DROP TABLE pruned_before;
DROP TABLE chain_heads;
ALTER TABLE changes DROP COLUMN digest, DROP COLUMN link;
