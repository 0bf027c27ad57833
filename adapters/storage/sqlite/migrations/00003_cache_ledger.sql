-- The read cache's ledger (ports.CacheLedger, app.Coherence): bumps of
-- generation counters the shared cache did not take, which every process
-- delivers before it trusts the cache again, and the cache server last
-- seen with the epoch that is part of every cache key. SQLite has one
-- writer, so records commit in seq order. counters is a JSON array; times
-- are Unix microseconds.

-- +goose Up
CREATE TABLE cache_missed (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    counters    TEXT    NOT NULL,
    recorded_at INTEGER NOT NULL
) STRICT;
CREATE INDEX cache_missed_recorded ON cache_missed (recorded_at);

CREATE TABLE cache_instance (
    one      INTEGER PRIMARY KEY CHECK (one = 1),
    instance TEXT    NOT NULL,
    epoch    INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE cache_instance;
DROP TABLE cache_missed;
