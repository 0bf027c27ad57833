-- activityd SQLite schema, version 7: erasures in the change feed (issue 18).
-- An erasure's change has no event (event_id is sixteen zero bytes) and
-- says what it erased in detail (JSON: from, to, by, count).

-- +goose Up
ALTER TABLE changes ADD COLUMN detail TEXT;

-- +goose Down
ALTER TABLE changes DROP COLUMN detail;
