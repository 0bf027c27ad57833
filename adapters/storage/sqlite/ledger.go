package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/activityd/activityd/ports"
)

var _ ports.CacheLedger = (*Store)(nil)

// RecordMissed implements ports.CacheLedger.
func (s *Store) RecordMissed(ctx context.Context, counters []string) error {
	if len(counters) == 0 {
		return nil
	}
	b, err := json.Marshal(counters)
	if err != nil {
		return fmt.Errorf("sqlite: record missed bumps: %w", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	_, err = s.w.ExecContext(ctx, `INSERT INTO cache_missed (counters, recorded_at) VALUES (?, ?)`,
		string(b), micros(time.Now()))
	return mapErr("record missed bumps", err)
}

// Missed implements ports.CacheLedger, in one read transaction.
func (s *Store) Missed(ctx context.Context, seq int64) (ports.LedgerState, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	tx, err := s.r.BeginTxx(ctx, nil)
	if err != nil {
		return ports.LedgerState{}, mapErr("read missed bumps", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	st := ports.LedgerState{Seq: seq}
	if err := tx.GetContext(ctx, &st.Epoch, `SELECT coalesce((SELECT epoch FROM cache_instance), 0)`); err != nil {
		return ports.LedgerState{}, mapErr("read missed bumps", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT seq, counters FROM cache_missed WHERE seq > ? ORDER BY seq`, seq)
	if err != nil {
		return ports.LedgerState{}, mapErr("read missed bumps", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			n  int64
			cs string
			c  []string
		)
		if err := rows.Scan(&n, &cs); err != nil {
			return ports.LedgerState{}, mapErr("read missed bumps", err)
		}
		if err := json.Unmarshal([]byte(cs), &c); err != nil {
			return ports.LedgerState{}, fmt.Errorf("sqlite: read missed bumps: record %d: %w", n, err)
		}
		st.Seq = max(st.Seq, n)
		st.Counters = append(st.Counters, c...)
	}
	if err := rows.Err(); err != nil {
		return ports.LedgerState{}, mapErr("read missed bumps", err)
	}
	return st, nil
}

// Rebase implements ports.CacheLedger.
func (s *Store) Rebase(ctx context.Context, instance string) (int64, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var epoch int64
	err := s.w.GetContext(ctx, &epoch, `
		INSERT INTO cache_instance (one, instance, epoch) VALUES (1, ?, 1)
		ON CONFLICT (one) DO UPDATE
		SET epoch = CASE WHEN instance = excluded.instance THEN epoch ELSE epoch + 1 END,
		    instance = excluded.instance
		RETURNING epoch`, instance)
	if err != nil {
		return 0, mapErr("rebase the cache", err)
	}
	return epoch, nil
}

// PruneMissed implements ports.CacheLedger.
func (s *Store) PruneMissed(ctx context.Context, t time.Time) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	_, err := s.w.ExecContext(ctx, `DELETE FROM cache_missed WHERE recorded_at < ?`, micros(t))
	return mapErr("prune missed bumps", err)
}
