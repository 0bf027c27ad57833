-- The fixed raw-SQL reference table of docs/performance.md, which the load
-- benchmarks (test/load/run.sh) measure activityd against. It does not
-- follow the postgres adapter's schema on purpose: the references stay the
-- same plain table whatever the adapter stores, so a schema change shows
-- up in the ratios instead of moving the yardstick.
--
-- run.sh runs this file with psql in the benchmark's schema, after seeding
-- activityd, with the variables rows (events the seed stored) and users
-- (the users they were spread over). The rows have the seed's shape and
-- distribution (test/load/run.go, seed): event g of 0..rows-1 belongs to
-- user g % users + 1, with the seed's action cycle, an occurred_at in the
-- past 30 days, a recorded_at increasing with g (so each user's events lie
-- scattered over the heap in insertion order, as the seed leaves them) and
-- the metadata {"device","ip","seq"}. Ids are UUIDv7-like, from recorded_at,
-- unique by construction. The indexes exist before the rows go in, as in
-- the service, so they are built the way the service's are.
SET client_min_messages = warning;
DROP TABLE IF EXISTS ref_events;
CREATE TABLE ref_events (
    id          uuid PRIMARY KEY,
    user_id     bigint NOT NULL,
    action      text NOT NULL,
    status      text NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    metadata    jsonb NOT NULL
);
CREATE INDEX ref_events_user_recorded ON ref_events (user_id, recorded_at, id);
CREATE INDEX ref_events_user_action_recorded ON ref_events (user_id, action, recorded_at, id);

INSERT INTO ref_events (id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata)
SELECT (lpad(to_hex((extract(epoch FROM t.at) * 1000)::bigint), 12, '0') || '7'
        || lpad(to_hex((random() * 4095)::int), 3, '0') || '8' || lpad(to_hex(g), 15, '0'))::uuid,
       g % :users + 1,
       (ARRAY['login', 'logout', 'upload_file', 'created', 'updated', 'deleted', 'viewed'])[g % 7 + 1],
       'PENDING',
       now() - random() * interval '30 days',
       t.at,
       t.at,
       ('{"device":"bench","ip":"10.0.0.1","seq":' || g || '}')::jsonb
FROM generate_series(0, :rows - 1) AS g,
     LATERAL (SELECT now() - (:rows - g) * interval '20 microseconds' AS at) AS t;
