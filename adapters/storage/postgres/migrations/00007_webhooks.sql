-- activityd schema, version 7: webhook subscriptions and their delivery
-- log (ports.Webhooks).
--
-- * webhook_subscriptions: one row per subscription. The filter's lists
--   are arrays ('{}': every value); the secrets, newest first, are a jsonb
--   array of {"secret", "created_at", "expires_at"} (Unix microseconds,
--   expires_at absent: never), stored as they are since they sign. The
--   dispatcher's state is plain columns. version is the compare-and-set
--   counter of every write (UPDATE ... WHERE id AND version); seq orders
--   subscriptions created in the same microsecond.
-- * webhook_deliveries: every attempt, newest last by seq. A write locks
--   its subscription's row, inserts, and trims that subscription's log to
--   its latest 1000 in one transaction, so the log stays bounded under
--   concurrent writers. duration is in nanoseconds.

-- +goose Up
CREATE TABLE webhook_subscriptions (
    id             text        PRIMARY KEY,
    seq            bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    url            text        NOT NULL,
    filter_actions text[]      NOT NULL DEFAULT '{}',
    filter_users   bigint[]    NOT NULL DEFAULT '{}',
    filter_kinds   text[]      NOT NULL DEFAULT '{}',
    secrets        jsonb       NOT NULL DEFAULT '[]',
    created_at     timestamptz NOT NULL,
    created_by     text        NOT NULL,
    version        bigint      NOT NULL,
    position       bigint      NOT NULL DEFAULT 0,
    pending        bigint      NOT NULL DEFAULT 0,
    failures       int         NOT NULL DEFAULT 0,
    paused         boolean     NOT NULL DEFAULT false,
    last_error     text        NOT NULL DEFAULT '',
    next_try       timestamptz
);
CREATE INDEX webhook_subscriptions_created_idx ON webhook_subscriptions (created_at, seq);

CREATE TABLE webhook_deliveries (
    subscription   text        NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    seq            bigint      GENERATED ALWAYS AS IDENTITY,
    message_id     text        NOT NULL,
    first_position bigint      NOT NULL,
    last_position  bigint      NOT NULL,
    changes        int         NOT NULL,
    attempt        int         NOT NULL,
    at             timestamptz NOT NULL,
    duration       bigint      NOT NULL,
    status_code    int         NOT NULL,
    error          text        NOT NULL,
    PRIMARY KEY (subscription, seq)
);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_subscriptions;
