package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/activityd/activityd/ports"
)

var _ ports.CacheLedger = (*Store)(nil)

// RecordMissed implements ports.CacheLedger. The table lock makes records
// commit in seq order (readers are not blocked), so Missed's seq is a
// low-water mark; records are rare, made only while the cache fails.
func (s *Store) RecordMissed(ctx context.Context, counters []string) error {
	if len(counters) == 0 {
		return nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("postgres: record missed bumps: %w", wrap(err))
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.ExecContext(ctx, `LOCK TABLE cache_missed IN EXCLUSIVE MODE`); err != nil {
		return fmt.Errorf("postgres: record missed bumps: %w", wrap(err))
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO cache_missed (counters) VALUES ($1)`, pq.Array(counters)); err != nil {
		return fmt.Errorf("postgres: record missed bumps: %w", wrap(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("postgres: record missed bumps: %w", wrap(err))
	}
	return nil
}

// Missed implements ports.CacheLedger, in one statement (one snapshot).
func (s *Store) Missed(ctx context.Context, seq int64) (ports.LedgerState, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	st := ports.LedgerState{}
	var counters pq.StringArray
	err := s.db.QueryRowContext(ctx, `
		SELECT coalesce((SELECT epoch FROM cache_instance), 0),
		       greatest(coalesce((SELECT max(seq) FROM cache_missed), 0), $1),
		       coalesce((SELECT array_agg(c) FROM cache_missed, unnest(counters) c WHERE seq > $1), '{}')`,
		seq).Scan(&st.Epoch, &st.Seq, &counters)
	if err != nil {
		return ports.LedgerState{}, fmt.Errorf("postgres: read missed bumps: %w", wrap(err))
	}
	st.Counters = counters
	return st, nil
}

// Rebase implements ports.CacheLedger. The row is always written: under
// concurrent rebases, the one that waited for the row lock re-reads the
// row the other committed, and so returns its epoch, never an older one.
func (s *Store) Rebase(ctx context.Context, instance string) (int64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var epoch int64
	err := s.db.QueryRowContext(ctx, `
		INSERT INTO cache_instance AS c (instance, epoch) VALUES ($1, 1)
		ON CONFLICT (one) DO UPDATE
		SET epoch = CASE WHEN c.instance = excluded.instance THEN c.epoch ELSE c.epoch + 1 END,
		    instance = excluded.instance
		RETURNING epoch`, instance).Scan(&epoch)
	if err != nil {
		return 0, fmt.Errorf("postgres: rebase the cache: %w", wrap(err))
	}
	return epoch, nil
}

// PruneMissed implements ports.CacheLedger.
func (s *Store) PruneMissed(ctx context.Context, t time.Time) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, `DELETE FROM cache_missed WHERE recorded_at < $1`, t); err != nil {
		return fmt.Errorf("postgres: prune missed bumps: %w", wrap(err))
	}
	return nil
}
