-- pgbench reference for GET /v1/users/{id}/events?limit=50 (docs/performance.md):
-- the newest-50 SELECT of one random user on the reference table
-- ref_events (ref_events.sql), 51 rows to learn whether a next page
-- exists. Run with -M prepared. Variables: -D users=N.
\set uid random(1, :users)
SELECT id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata FROM ref_events WHERE user_id = :uid ORDER BY recorded_at DESC, id DESC LIMIT 51;
