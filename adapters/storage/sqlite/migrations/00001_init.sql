-- The initial schema. Times are INTEGER Unix microseconds (UTC), the
-- resolution every store keeps (domain.Precision); ids are the 16 bytes of
-- the UUID, so that ordering by id is ordering by bytes, as in every store.

-- +goose Up
CREATE TABLE events (
    id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    user_id     INTEGER NOT NULL,
    action      TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('PENDING', 'IN_PROGRESS', 'DONE')),
    occurred_at INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    metadata    TEXT    NOT NULL DEFAULT '{}'
) STRICT;

-- One index per List filter shape and time field; each ends in the keyset
-- (time, id), so a page is one index range in order, without a sort.
CREATE INDEX events_user_recorded        ON events (user_id, recorded_at, id);
CREATE INDEX events_user_action_recorded ON events (user_id, action, recorded_at, id);
CREATE INDEX events_recorded             ON events (recorded_at, id);
CREATE INDEX events_user_occurred        ON events (user_id, occurred_at, id);
CREATE INDEX events_user_action_occurred ON events (user_id, action, occurred_at, id);
CREATE INDEX events_occurred             ON events (occurred_at, id);

-- Every status change, oldest first per event; seq 1 is the initial PENDING
-- (from_status NULL).
CREATE TABLE status_history (
    event_id    BLOB    NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    from_status TEXT,
    to_status   TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    "by"        TEXT    NOT NULL,
    PRIMARY KEY (event_id, seq)
) STRICT, WITHOUT ROWID;

-- API tokens: only the SHA-256 of the secret is stored. scopes is a
-- space-separated list; NULL times mean "never".
CREATE TABLE tokens (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL DEFAULT '',
    user_id    INTEGER NOT NULL,
    scopes     TEXT    NOT NULL,
    hash       BLOB    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
) STRICT;

CREATE INDEX tokens_created ON tokens (created_at);

-- +goose Down
DROP TABLE tokens;
DROP TABLE status_history;
DROP TABLE events;
