-- activityd SQLite schema, version 5: the change feed (issue 17).
-- One row per change (an event recorded, a status changed), numbered by
-- AUTOINCREMENT in the write transaction that makes the change. SQLite has
-- one writer, so positions follow commit order, and AUTOINCREMENT never
-- hands a position out twice, even after the newest rows are deleted.
-- The event's other columns are read from events (metadata as it is now:
-- an erasure reaches the feed); status and updated_at are the change's.

-- +goose Up
CREATE TABLE changes (
    position   INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       INTEGER NOT NULL,
    event_id   BLOB    NOT NULL,
    user_id    INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    status     TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
-- A user's own feed (non-admin readers).
CREATE INDEX changes_user ON changes (user_id, position);

-- +goose Down
DROP TABLE changes;
