package app

import (
	"context"
	"fmt"

	"github.com/activityd/activityd/domain"
)

// ExportPageSize is how many events Export reads from the store at a time:
// the most it holds in memory however many events match.
const ExportPageSize = domain.MaxLimit

// Export hands every event q selects, as p may see it, to each, one at a
// time, and returns how many it handed over. Ownership is as for List: a
// non-admin principal that names no user exports its own events, and
// naming another user is domain.ErrForbidden; every check happens before
// the first event is read, so an error with n == 0 from a check means
// nothing was handed over.
//
// The order is q's (time_field, then id as the tie-break), but ascending
// — oldest first — when q names none, unlike a listing. q may not set
// Limit, Cursor or Offset: an export reads everything that matches, page
// by page with the keyset cursor (ExportPageSize events per store call),
// so memory stays constant.
//
// The export is bounded when it starts: q's To, or the time Export began
// when that is earlier (or To is not given), so that events recorded while
// it runs cannot make it endless. An event recorded just before the start
// whose commit lands after it may or may not be included, and with
// time_field occurred_at an event recorded during the export whose
// occurred_at falls in the range may or may not be.
//
// An error from each stops the export and is returned as it is; a store
// error is wrapped. Either way n counts the events handed over before it,
// and the caller must not present them as a complete export.
func (s *Events) Export(ctx context.Context, p domain.Principal, q domain.Query, each func(domain.Event) error) (n int, err error) {
	f, err := s.exportFilter(p, q)
	if err != nil {
		return 0, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("export events: %w", err)
		}
		page, err := s.store.List(ctx, f)
		if err != nil {
			return n, fmt.Errorf("export events after %d: %w", n, err)
		}
		for _, e := range page.Events {
			if err := each(e); err != nil {
				return n, err
			}
			n++
		}
		if page.Next == nil {
			return n, nil
		}
		f.After = page.Next
	}
}

// exportFilter validates q for an export, applies p's rights and bounds
// the range at now.
func (s *Events) exportFilter(p domain.Principal, q domain.Query) (domain.Filter, error) {
	if err := need(p, domain.ScopeRead); err != nil {
		return domain.Filter{}, err
	}
	ve := &domain.ValidationError{}
	for _, param := range []struct{ name, value string }{{"limit", q.Limit}, {"cursor", q.Cursor}, {"offset", q.Offset}} {
		if param.value != "" {
			ve.Add(param.name, domain.CodeConflict, "is not taken by an export, which reads every matching event")
		}
	}
	if err := ve.OrNil(); err != nil {
		return domain.Filter{}, err
	}
	if q.Order == "" {
		q.Order = string(domain.Asc)
	}
	f, err := s.filter(p, q)
	if err != nil {
		return domain.Filter{}, err
	}
	f.Limit = ExportPageSize
	if now := domain.Normalize(s.clock.Now()); f.To.IsZero() || now.Before(f.To) {
		f.To = now
	}
	return f, nil
}
