-- pgbench reference for POST /v1/events on PostgreSQL: the statement the
-- postgres adapter runs for one create (createSQL in
-- adapters/storage/postgres/events.go), one per transaction, autocommit.
-- The adapter binds a UUIDv7 made in Go and the Go clock; pgbench can only
-- bind numbers, so the id is a UUIDv7 built from clock_timestamp() and two
-- random numbers (time-ordered like the server's, so the indexes see the
-- same locality) and the time is now(). Variables: -D users=N.
\set uid random(1, :users)
\set r1 random(0, 4095)
\set r2 random(0, 281474976710655)
WITH p AS MATERIALIZED (
    SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
            || '7' || lpad(to_hex(:r1::int), 3, '0') || '8' || lpad(to_hex(:r2::bigint), 15, '0'))::uuid AS id,
           now() AS ts
), claim AS (
    INSERT INTO event_ids (id, recorded_at) SELECT id, ts FROM p
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), ins AS (
    INSERT INTO events (id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata)
    SELECT c.id, :uid::bigint, 'login'::text, 'PENDING'::text, p.ts, p.ts, p.ts,
           '{"device":"bench","ip":"10.0.0.1"}'::jsonb
    FROM claim c, p
    RETURNING id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata
), hist AS (
    INSERT INTO event_status_history (event_id, event_recorded_at, from_status, to_status, at, changed_by)
    SELECT c.id, p.ts, NULL, 'PENDING', p.ts, 'bootstrap'::text FROM claim c, p
)
SELECT true, id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata FROM ins
UNION ALL
SELECT false, e.id, e.user_id, e.action, e.status, e.occurred_at, e.recorded_at, e.updated_at, e.metadata
FROM events e, p
WHERE NOT EXISTS (SELECT 1 FROM claim)
  AND e.id = p.id
  AND e.recorded_at = (SELECT recorded_at FROM event_ids WHERE id = p.id);
