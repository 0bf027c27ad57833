-- activityd schema, version 6: the change feed (issue 17).
-- Every write statement that changes events (a create, a group of creates,
-- a batch, an import, a status change) also inserts its changes here,
-- numbered from feed_head's one row: the UPDATE's row lock is held until
-- the transaction commits, so the next writer numbers its changes only
-- after this one's are visible. Positions therefore follow commit order
-- and have no holes (a rollback takes its numbers back with it): a reader
-- that has seen position P can never later find a change below P. The
-- lock is taken last in each transaction (after every id claim), so it
-- cannot be part of a deadlock, and it is held for the commit only.
-- status and updated_at are the event's as the change left them; the
-- event's other columns are read from events when the feed is read.

-- +goose Up
CREATE TABLE feed_head (
    one  int    PRIMARY KEY CHECK (one = 1),
    last bigint NOT NULL
);
INSERT INTO feed_head (one, last) VALUES (1, 0);

CREATE TABLE changes (
    position          bigint      PRIMARY KEY,
    kind              smallint    NOT NULL,
    event_id          uuid        NOT NULL,
    event_recorded_at timestamptz NOT NULL,
    user_id           bigint      NOT NULL,
    at                timestamptz NOT NULL,
    status            text        NOT NULL,
    updated_at        timestamptz NOT NULL
);
-- A user's own feed (non-admin readers).
CREATE INDEX changes_user_idx ON changes (user_id, position);

-- +goose Down
DROP TABLE changes;
DROP TABLE feed_head;
