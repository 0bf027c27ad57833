-- activityd SQLite schema, version 6: webhook subscriptions and their
-- delivery log (ports.Webhooks).
--
-- * webhook_subscriptions: one row per subscription. The filter's lists
--   and the secrets (newest first, each {"secret", "created_at",
--   "expires_at"} in Unix microseconds, 0: never) are JSON arrays; the
--   dispatcher's state is plain columns. version is the compare-and-set
--   counter of every write. Secrets are stored as they are: they sign.
-- * webhook_deliveries: every attempt, numbered by seq (the rowid; only a
--   subscription's own attempts are ever compared); each write trims a
--   subscription's log to its latest 1000. duration is in nanoseconds.

-- +goose Up
CREATE TABLE webhook_subscriptions (
    id             TEXT    NOT NULL PRIMARY KEY,
    url            TEXT    NOT NULL,
    filter_actions TEXT    NOT NULL DEFAULT '[]',
    filter_users   TEXT    NOT NULL DEFAULT '[]',
    filter_kinds   TEXT    NOT NULL DEFAULT '[]',
    secrets        TEXT    NOT NULL DEFAULT '[]',
    created_at     INTEGER NOT NULL,
    created_by     TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    position       INTEGER NOT NULL DEFAULT 0,
    pending        INTEGER NOT NULL DEFAULT 0,
    failures       INTEGER NOT NULL DEFAULT 0,
    paused         INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    last_error     TEXT    NOT NULL DEFAULT '',
    next_try       INTEGER
) STRICT;
CREATE INDEX webhook_subscriptions_created ON webhook_subscriptions (created_at);

CREATE TABLE webhook_deliveries (
    seq            INTEGER PRIMARY KEY,
    subscription   TEXT    NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    message_id     TEXT    NOT NULL,
    first_position INTEGER NOT NULL,
    last_position  INTEGER NOT NULL,
    changes        INTEGER NOT NULL,
    attempt        INTEGER NOT NULL,
    at             INTEGER NOT NULL,
    duration       INTEGER NOT NULL,
    status_code    INTEGER NOT NULL,
    error          TEXT    NOT NULL
) STRICT;
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription, seq);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_subscriptions;
