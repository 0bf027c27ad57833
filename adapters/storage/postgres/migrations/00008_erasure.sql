-- activityd schema, version 8: erasures in the change feed (issue 18).
-- An erasure's change has no event (event_id is the nil UUID,
-- event_recorded_at its own time) and says what it erased in detail.

-- +goose Up
ALTER TABLE changes ADD COLUMN detail jsonb;

-- +goose Down
ALTER TABLE changes DROP COLUMN detail;
