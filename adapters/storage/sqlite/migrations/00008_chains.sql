-- activityd SQLite schema, version 8: tamper evidence (issue 18,
-- docs/evidence.md).
-- Every change is linked into its user's hash chain in the transaction
-- that makes it: link is domain.Link of the user's previous link and the
-- change's entry, digest what the entry covered of the metadata
-- (domain.MetadataDigest as recorded) or of the erasure
-- (domain.ErasureDigest). link is NULL for a change made while chaining
-- was off (storage.Options.Unchained), which verification reports as
-- unchained; digest is NULL there too, and for a change with no digest (a
-- status change's is zero). Version 9, a Go migration (migrate.go), links
-- the changes made before this version.
-- chain_heads is each user's last link, what a checkpoint signs; a
-- checkpoint keeps its leaves (56 bytes per head: user_id, position,
-- count big-endian, then the link) only while it is among the newest
-- ports.KeptLeaves, NULL after.

-- Retention keeps the change rows of the events it deletes, marked
-- pruned (their links are what later changes follow): verification takes
-- a pruned change's link as stored, and names any other change whose
-- event is gone as a deletion. changes_event finds an event's changes.

-- +goose Up
ALTER TABLE changes ADD COLUMN digest BLOB;
ALTER TABLE changes ADD COLUMN link BLOB;
ALTER TABLE changes ADD COLUMN pruned INTEGER NOT NULL DEFAULT 0;
CREATE INDEX changes_event ON changes (event_id);
-- Changes whose event is gone were left by retention before this version.
UPDATE changes SET pruned = 1 WHERE kind <> 3 AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = changes.event_id);

CREATE TABLE chain_heads (
    user_id  INTEGER PRIMARY KEY,
    position INTEGER NOT NULL,
    count    INTEGER NOT NULL,
    link     BLOB    NOT NULL
) STRICT;

CREATE TABLE checkpoints (
    position  INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    users     INTEGER NOT NULL,
    root      BLOB    NOT NULL,
    key_id    TEXT    NOT NULL,
    signature BLOB    NOT NULL,
    leaves    BLOB
) STRICT;

-- +goose Down
DROP TABLE checkpoints;
DROP TABLE chain_heads;
DROP INDEX changes_event;
ALTER TABLE changes DROP COLUMN pruned;
ALTER TABLE changes DROP COLUMN link;
ALTER TABLE changes DROP COLUMN digest;
