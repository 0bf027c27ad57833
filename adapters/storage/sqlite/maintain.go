package sqlite

import (
	"context"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/activityd/activityd/ports"
)

var _ ports.Maintainer = (*Store)(nil)

// retentionChunk is how many events one retention DELETE removes: each
// chunk is its own short write, so creates interleave with a large purge.
var retentionChunk = 5000 // a variable for tests

// Maintain implements ports.Maintainer. SQLite needs no upkeep ahead of
// writes; when retention > 0 it deletes the events recorded before
// now - retention, to the microsecond, with their status history, and
// returns how many events it deleted (SQLite's unit of retention is the
// event, not a partition). Several processes may run it at once.
func (s *Store) Maintain(ctx context.Context, now time.Time, retention time.Duration) (int, error) {
	if retention <= 0 {
		return 0, nil
	}
	cutoff := micros(now.Add(-retention))
	total := 0
	for {
		n, err := s.deleteChunk(ctx, cutoff)
		total += n
		if err != nil {
			return total, mapErr("retention", err)
		}
		if n < retentionChunk {
			break
		}
	}
	// Their changes: a chained store keeps them, marked pruned by
	// deleteChunk (later links follow theirs). Otherwise every change made
	// before the cutoff is of an event recorded before it. (A later status
	// change of such an event stays, and is left out of reads, which join
	// the event.)
	if !s.unchained {
		return total, nil
	}
	for {
		n, err := s.deleteChanges(ctx, cutoff)
		if err != nil {
			return total, mapErr("retention of the change feed", err)
		}
		if n < retentionChunk {
			return total, nil
		}
	}
}

func (s *Store) deleteChanges(ctx context.Context, cutoff int64) (int, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res, err := s.w.ExecContext(ctx, `DELETE FROM changes WHERE position IN (
		SELECT position FROM changes WHERE at < ? ORDER BY position LIMIT ?)`, cutoff, retentionChunk)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (s *Store) deleteChunk(ctx context.Context, cutoff int64) (int, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if !s.unchained {
		// The chunk's changes stay, marked pruned, in the same write.
		const chunk = `SELECT id FROM events INDEXED BY events_recorded WHERE recorded_at < ? ORDER BY recorded_at LIMIT ?`
		var n int64
		err := s.writeBulkTx(ctx, func(tx *sqlx.Tx) error {
			if _, err := tx.ExecContext(ctx, `UPDATE changes SET pruned = 1 WHERE event_id IN (`+chunk+`)`, cutoff, retentionChunk); err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE id IN (`+chunk+`)`, cutoff, retentionChunk)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		return int(n), err
	}
	// status_history rows go with their event (ON DELETE CASCADE).
	res, err := s.w.ExecContext(ctx, `DELETE FROM events WHERE id IN (
		SELECT id FROM events INDEXED BY events_recorded WHERE recorded_at < ? LIMIT ?)`, cutoff, retentionChunk)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
