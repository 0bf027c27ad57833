package app

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// ErasureQuery is an erasure as an admin asks for it.
type ErasureQuery struct {
	UserID   string // the user whose events' metadata goes
	From, To string // RFC 3339, optional: only events recorded in [From, To)
}

// Erase removes the metadata of a user's events (recorded in the optional
// range), for admin p, keeping the events themselves, their counts and
// their history: a person's right to erasure. The erasure is itself a
// change of the feed (who, when, how many, the range), in that user's
// feed; the caches forget the user; this process's feed tail forgets the
// metadata. Erasing again erases nothing more (Count 0) and records
// nothing: it is idempotent.
func (s *Events) Erase(ctx context.Context, p domain.Principal, q ErasureQuery) (domain.Erasure, error) {
	if !p.IsAdmin() {
		return domain.Erasure{}, fmt.Errorf("%w: only an admin may erase a user's data", domain.ErrForbidden)
	}
	er, ok := s.store.(ports.Erasures)
	if !ok {
		return domain.Erasure{}, fmt.Errorf("erase: this store cannot erase: %w", domain.ErrUnavailable)
	}
	e := domain.Erasure{By: p.Name, At: domain.Normalize(s.clock.Now())}
	ve := &domain.ValidationError{}
	if n, err := strconv.ParseInt(q.UserID, 10, 64); err != nil || n < 1 {
		ve.Add("user_id", domain.CodeMalformed, "must be a positive integer")
	} else {
		e.UserID = n
	}
	for _, b := range []struct {
		name, value string
		into        *time.Time
	}{{"from", q.From, &e.From}, {"to", q.To, &e.To}} {
		if b.value == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, b.value)
		if err != nil {
			ve.Add(b.name, domain.CodeMalformed, "must be an RFC 3339 time")
			continue
		}
		*b.into = domain.Normalize(t)
	}
	if !e.From.IsZero() && !e.To.IsZero() && !e.From.Before(e.To) {
		ve.Add("to", domain.CodeConflict, "must be after from")
	}
	if err := ve.OrNil(); err != nil {
		return domain.Erasure{}, err
	}
	out, err := er.Erase(ctx, e)
	if err != nil {
		return domain.Erasure{}, fmt.Errorf("erase user %d: %w", e.UserID, err)
	}
	// Also when nothing was left to erase: a retry after an error whose
	// erasure was stored still clears what this process holds.
	if s.forget != nil {
		s.forget(e)
	}
	s.invalidate(ctx, out.UserID)
	return out, nil
}
