-- The counting job's results: per closed window, per user and action, the
-- number of events recorded in [window_start, window_end). A window computed
-- again replaces its rows (same window_start). Users without events in a
-- window have no rows. Times are Unix microseconds, as everywhere.

-- +goose Up
CREATE TABLE activity_counts (
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL,
    user_id      INTEGER NOT NULL,
    action       TEXT    NOT NULL,
    count        INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (window_start, user_id, action),
    CHECK (window_end > window_start)
) STRICT, WITHOUT ROWID;

-- One user's windows (GET /v1/users/{id}/activity-counts).
CREATE INDEX activity_counts_user ON activity_counts (user_id, window_start);

-- The computed window with the latest end, per job.
CREATE TABLE activity_count_watermarks (
    job          TEXT    NOT NULL PRIMARY KEY,
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL,
    computed_at  INTEGER NOT NULL,
    CHECK (window_end > window_start)
) STRICT;

-- +goose Down
DROP TABLE activity_count_watermarks;
DROP TABLE activity_counts;
