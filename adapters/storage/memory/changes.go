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
	r       *record         // nil for an erasure
	erasure *domain.Erasure // an erasure's
	digest  domain.Hash     // what the link covers of the metadata or erasure
	link    domain.Hash     // in its user's chain
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
		if c.erasure != nil {
			if f.UserID == 0 || c.erasure.UserID == f.UserID {
				er := *c.erasure
				out = append(out, domain.Change{Position: i + 1, Kind: c.kind, At: c.at, Erasure: &er})
			}
			continue
		}
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

// Erase implements ports.Erasures.
func (s *Store) Erase(ctx context.Context, e domain.Erasure) (domain.Erasure, error) {
	if err := ctx.Err(); err != nil {
		return domain.Erasure{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return domain.Erasure{}, domain.ErrUnavailable
	}
	e.Count = 0
	for _, r := range s.ordered {
		if r.e.UserID != e.UserID || (!e.From.IsZero() && r.e.RecordedAt.Before(e.From)) ||
			(!e.To.IsZero() && !r.e.RecordedAt.Before(e.To)) || string(r.e.Metadata) == "{}" {
			continue
		}
		r.e.Metadata = domain.EmptyMetadata()
		e.Count++
	}
	if e.Count > 0 {
		rec := e
		s.appendChange(change{kind: domain.ChangeErased, at: e.At, erasure: &rec})
	}
	return e, nil
}
