-- pgbench reference for POST /v1/events (docs/performance.md): one plain INSERT
-- per transaction into the reference table ref_events (ref_events.sql),
-- autocommit, the same metadata the load tool sends. The id is a UUIDv7
-- built from clock_timestamp() and two random numbers (pgbench binds only
-- numbers), time-ordered like the server's, so the primary key sees the
-- same locality. Run with -M prepared. Variables: -D users=N.
\set uid random(1, :users)
\set r1 random(0, 4095)
\set r2 random(0, 281474976710655)
INSERT INTO ref_events (id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata)
VALUES ((lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
         || '7' || lpad(to_hex(:r1::int), 3, '0') || '8' || lpad(to_hex(:r2::bigint), 15, '0'))::uuid,
        :uid, 'login', 'PENDING', now(), now(), now(), '{"device":"bench","ip":"10.0.0.1"}');
