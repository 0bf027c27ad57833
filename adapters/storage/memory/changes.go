package memory

import (
	"context"
	"time"

	"github.com/activityd/activityd/domain"
)

// change is one entry of the feed: its event, and what the change left of
// the event's status.
type change struct {
	kind    domain.ChangeKind
	at      time.Time
	status  domain.Status
	updated time.Time
	r       *record
}

// Changes implements ports.Changes. Changes are appended under the store's
// lock, so position order is the order writes were made visible.
func (s *Store) Changes(ctx context.Context, f domain.ChangeFilter) ([]domain.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, domain.ErrUnavailable
	}
	out := []domain.Change{}
	for i := max(f.After, 0); i < int64(len(s.changes)) && len(out) < f.Limit; i++ {
		c := s.changes[i]
		if f.UserID != 0 && c.r.e.UserID != f.UserID {
			continue
		}
		e := clone(c.r.e)
		e.Status, e.UpdatedAt = c.status, c.updated
		out = append(out, domain.Change{Position: i + 1, Kind: c.kind, At: c.at, Event: e})
	}
	return out, nil
}

// FeedHead implements ports.Changes.
func (s *Store) FeedHead(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, domain.ErrUnavailable
	}
	return int64(len(s.changes)), nil
}
