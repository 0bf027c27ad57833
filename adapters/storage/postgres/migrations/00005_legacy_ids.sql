-- activityd schema, version 5: activity-logger log numbers (issue 15).
-- One row holds the last number handed out or reserved
-- (ports.Imports.NextLegacyID). A row, not a SEQUENCE: reserving must only
-- ever move it forward, which setval cannot do atomically with a
-- concurrent nextval; an UPDATE's row lock can. The numbers themselves
-- live in event ids (domain.LegacyID.ID), so no other table changes.

-- +goose Up
CREATE TABLE legacy_ids (
    one  int    PRIMARY KEY CHECK (one = 1),
    last bigint NOT NULL
);
INSERT INTO legacy_ids (one, last) VALUES (1, 0);

-- +goose Down
DROP TABLE legacy_ids;
