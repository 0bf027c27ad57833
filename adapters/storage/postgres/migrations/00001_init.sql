-- activityd schema, version 1.
--
-- Monthly partitions of events and event_status_history are not created
-- here but by the service (Store.EnsurePartitions, called from Migrate and
-- periodically): they depend on the date. The DEFAULT partitions catch any
-- row no monthly partition takes.

-- +goose Up

-- Every event id, once: a partitioned table can only enforce keys that
-- include its partition key, so this table is what makes ids unique. It is
-- also how an event is found by id (its recorded_at names the partition).
CREATE TABLE event_ids (
    id          uuid        PRIMARY KEY,
    recorded_at timestamptz NOT NULL
);

CREATE TABLE events (
    id          uuid        NOT NULL,
    user_id     bigint      NOT NULL CHECK (user_id > 0),
    action      text        NOT NULL CHECK (char_length(action) BETWEEN 1 AND 64),
    status      text        NOT NULL CHECK (status IN ('PENDING', 'IN_PROGRESS', 'DONE')),
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    metadata    jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    -- (recorded_at, id) rather than (id, recorded_at): the same uniqueness,
    -- and the keyset index for listing every user by recorded_at; a lookup
    -- by id goes through event_ids, which knows recorded_at.
    PRIMARY KEY (recorded_at, id)
) PARTITION BY RANGE (recorded_at);

CREATE TABLE events_default PARTITION OF events DEFAULT;

-- One index per filter shape of GET /v1/events, each ending in the keyset
-- order (time, id): one user; one user and one action; every user (the
-- primary key for recorded_at, events_occurred_idx for occurred_at).
CREATE INDEX events_user_recorded_idx ON events (user_id, recorded_at, id);
CREATE INDEX events_user_action_recorded_idx ON events (user_id, action, recorded_at, id);
CREATE INDEX events_user_occurred_idx ON events (user_id, occurred_at, id);
CREATE INDEX events_user_action_occurred_idx ON events (user_id, action, occurred_at, id);
CREATE INDEX events_occurred_idx ON events (occurred_at, id);

-- Status history, partitioned like events on the recorded_at of its event
-- so that retention drops both together.
CREATE TABLE event_status_history (
    event_id          uuid        NOT NULL,
    event_recorded_at timestamptz NOT NULL,
    seq               bigserial   NOT NULL,
    from_status       text        CHECK (from_status IN ('PENDING', 'IN_PROGRESS', 'DONE')),
    to_status         text        NOT NULL CHECK (to_status IN ('PENDING', 'IN_PROGRESS', 'DONE')),
    at                timestamptz NOT NULL,
    changed_by        text        NOT NULL,
    PRIMARY KEY (event_id, event_recorded_at, seq)
) PARTITION BY RANGE (event_recorded_at);

CREATE TABLE event_status_history_default PARTITION OF event_status_history DEFAULT;

-- API tokens: only the SHA-256 of the secret is stored.
CREATE TABLE api_tokens (
    id         text        PRIMARY KEY,
    seq        bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    name       text        NOT NULL DEFAULT '',
    user_id    bigint      NOT NULL CHECK (user_id >= 0),
    scopes     text[]      NOT NULL,
    hash       bytea       NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz
);

-- Activity counts per closed window, per user and action (the counting
-- job). A window computed twice is upserted on the primary key.
CREATE TABLE activity_counts (
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    user_id      bigint      NOT NULL,
    action       text        NOT NULL,
    count        bigint      NOT NULL CHECK (count >= 0),
    PRIMARY KEY (window_start, user_id, action),
    CHECK (window_end > window_start)
);

CREATE INDEX activity_counts_user_idx ON activity_counts (user_id, window_start);

-- The last window the counting job completed, per job (schedule).
CREATE TABLE activity_count_watermarks (
    job          text        PRIMARY KEY,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    computed_at  timestamptz NOT NULL,
    CHECK (window_end > window_start)
);

-- +goose Down
DROP TABLE activity_count_watermarks;
DROP TABLE activity_counts;
DROP TABLE api_tokens;
DROP TABLE event_status_history;
DROP TABLE events;
DROP TABLE event_ids;
