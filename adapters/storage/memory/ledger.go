package memory

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/activityd/activityd/ports"
)

// ledger is the store's ports.CacheLedger: the process is its only
// reader, so it is what the contract needs and no more.
type ledger struct {
	mu       sync.Mutex
	seq      int64
	records  []missed
	instance string
	epoch    int64
}

type missed struct {
	seq      int64
	counters []string
	at       time.Time
}

var _ ports.CacheLedger = (*Store)(nil)

// RecordMissed implements ports.CacheLedger.
func (s *Store) RecordMissed(ctx context.Context, counters []string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if len(counters) == 0 {
		return nil
	}
	l := &s.ledger
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	l.records = append(l.records, missed{seq: l.seq, counters: slices.Clone(counters), at: time.Now()})
	return nil
}

// Missed implements ports.CacheLedger.
func (s *Store) Missed(ctx context.Context, seq int64) (ports.LedgerState, error) {
	if err := s.check(ctx); err != nil {
		return ports.LedgerState{}, err
	}
	l := &s.ledger
	l.mu.Lock()
	defer l.mu.Unlock()
	st := ports.LedgerState{Epoch: l.epoch, Seq: max(seq, l.seq)}
	for _, r := range l.records {
		if r.seq > seq {
			st.Counters = append(st.Counters, r.counters...)
		}
	}
	return st, nil
}

// Rebase implements ports.CacheLedger.
func (s *Store) Rebase(ctx context.Context, instance string) (int64, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	l := &s.ledger
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.epoch == 0 || l.instance != instance {
		l.epoch++
		l.instance = instance
	}
	return l.epoch, nil
}

// PruneMissed implements ports.CacheLedger.
func (s *Store) PruneMissed(ctx context.Context, t time.Time) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	l := &s.ledger
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = slices.DeleteFunc(l.records, func(r missed) bool { return r.at.Before(t) })
	return nil
}

// check fails a call made with a done context or on a closed store.
func (s *Store) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.Ping(ctx); err != nil {
		return err
	}
	return nil
}
