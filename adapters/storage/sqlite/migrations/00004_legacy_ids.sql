-- activityd SQLite schema, version 4: activity-logger log numbers (issue 15).
-- One row holds the last number handed out or reserved
-- (ports.Imports.NextLegacyID); the numbers themselves live in event ids
-- (domain.LegacyID.ID), so no other table changes.

-- +goose Up
CREATE TABLE legacy_ids (
    one  INTEGER PRIMARY KEY CHECK (one = 1),
    last INTEGER NOT NULL
) STRICT;
INSERT INTO legacy_ids (one, last) VALUES (1, 0);

-- +goose Down
DROP TABLE legacy_ids;
