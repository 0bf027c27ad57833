-- pgbench reference for GET /v1/users/{id}/events (newest 50, no other
-- filter) on PostgreSQL: the statement buildList in
-- adapters/storage/postgres/list.go renders for that filter, with the same
-- parameters (the user id, and limit+1 = 51 to learn whether a next page
-- exists). Run with -M prepared, as the adapter prepares it too.
-- Variables: -D users=N -D lim=51.
\set uid random(1, :users)
SELECT id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata FROM events WHERE user_id = :uid ORDER BY recorded_at DESC, id DESC LIMIT :lim;
