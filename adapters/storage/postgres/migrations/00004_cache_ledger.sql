-- activityd schema, version 4: the read cache's ledger (issue 13;
-- ports.CacheLedger, app.Coherence).
--
-- * cache_missed: generation counters whose bump the cache (Redis) did not
--   take. Every replica delivers them to the cache before it trusts the
--   cache again. seq is taken under an EXCLUSIVE lock on the table by the
--   inserting transaction, so records become visible in seq order and a
--   reader that saw seq n has seen every record before it.
-- * cache_instance: the cache server last seen (Redis's run_id) and the
--   epoch that is part of every cache key; a different server moves the
--   epoch on, so nothing cached before is reached again.

-- +goose Up
CREATE TABLE cache_missed (
    seq         bigserial   PRIMARY KEY,
    counters    text[]      NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cache_missed_recorded_idx ON cache_missed (recorded_at);

CREATE TABLE cache_instance (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    instance text    NOT NULL,
    epoch    bigint  NOT NULL
);

-- +goose Down
DROP TABLE cache_instance;
DROP TABLE cache_missed;
