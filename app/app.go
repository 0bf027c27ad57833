// Package app holds activityd's use cases: record, query and transition
// events, and manage API tokens. Use cases take ports, enforce the domain's
// rules and the principal's rights, and return domain types and errors.
// Every driving adapter (the /v1 API, the predecessors' surfaces, the CLI)
// goes through here, so no rule is implemented twice.
package app

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// Events is the event use cases.
type Events struct {
	store  ports.Events
	clock  ports.Clock
	limits domain.Limits
	cache  *readCache // nil: reads are not cached
	// observer hears records and transitions (metrics); never nil.
	observer Observer
	// numbers hands out activity-logger log numbers (NewEvent.Legacy);
	// nil: such events get UUIDs like every other.
	numbers legacyNumbers
	// written is called after every write that changed events; nil: none.
	written func()
	// privacy is applied to metadata before anything is stored.
	privacy domain.Privacy
	// forget is told of every erasure (the feed's tail); nil: none.
	forget func(domain.Erasure)
}

// ForgetErasures has fn told of every erasure this process makes (the
// change feed's Erased, which empties the metadata its tail holds).
func ForgetErasures(fn func(domain.Erasure)) Option {
	return func(s *Events) { s.forget = fn }
}

// WithPrivacy applies p's rules (METADATA_RULES) to the metadata of every
// event before it is stored: recorded on any surface, in batches, or
// imported.
func WithPrivacy(p domain.Privacy) Option {
	return func(s *Events) { s.privacy = p }
}

// private applies the privacy rules to e's metadata.
func (s *Events) private(e domain.Event) (domain.Event, error) {
	md, err := s.privacy.Apply(e.Metadata)
	if err != nil {
		return domain.Event{}, domain.Invalid("metadata", domain.CodeMalformed, "%s", err.Error())
	}
	e.Metadata = md
	return e, nil
}

// NotifyWrites has fn called after every write that changed events (the
// change feed's Notify, which wakes its waiting readers).
func NotifyWrites(fn func()) Option {
	return func(s *Events) { s.written = fn }
}

// legacyNumbers is the part of ports.Imports that Record needs.
type legacyNumbers interface {
	NextLegacyID(ctx context.Context) (int64, error)
}

// WithLegacyIDs numbers the events recorded with NewEvent.Legacy set to
// domain.ActivityLogger from numbers (the store), so the activity-logger
// surface can answer with the integer ids its clients expect.
func WithLegacyIDs(numbers ports.Imports) Option {
	return func(s *Events) { s.numbers = numbers }
}

// NewEvents returns the event use cases over store.
func NewEvents(store ports.Events, clock ports.Clock, limits domain.Limits, opts ...Option) *Events {
	s := &Events{store: store, clock: clock, limits: limits, observer: nopObserver{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Limits returns the input limits in force.
func (s *Events) Limits() domain.Limits { return s.limits }

// Record validates in and stores it for p. The event's user is in.UserID,
// or p's user when absent. A client id, or else in.IdempotencyKey, makes
// the create idempotent: a retry with the same content returns the stored
// event with created == false; other content is domain.ErrIDConflict.
func (s *Events) Record(ctx context.Context, p domain.Principal, in domain.NewEvent) (e domain.Event, created bool, err error) {
	e, err = s.prepare(p, in)
	if err != nil {
		return domain.Event{}, false, err
	}
	if numbered(in) && s.numbers != nil {
		return s.recordNumbered(ctx, p, e)
	}
	stored, created, err := s.create(ctx, p, e)
	if err != nil || created {
		return stored, created, err
	}
	if !domain.SameContent(stored, e, sentOccurredAt(in)) {
		return domain.Event{}, false, fmt.Errorf("%w: %s", domain.ErrIDConflict, e.ID)
	}
	return stored, false, nil
}

// create stores e for p and, when it is new, tells the cache and the
// observer; an existing id returns the stored event with created false.
func (s *Events) create(ctx context.Context, p domain.Principal, e domain.Event) (domain.Event, bool, error) {
	stored, created, err := s.store.Create(ctx, e, p.Name)
	if err != nil {
		return domain.Event{}, false, fmt.Errorf("record event: %w", err)
	}
	if created {
		s.invalidate(ctx, stored.UserID)
		s.observer.Recorded(ctx, stored.Action)
	}
	return stored, created, nil
}

// numbered reports whether in asks for an activity-logger log number: it
// names no id of its own, by id or by Idempotency-Key (those keep the id
// they name, so that a retry finds its event).
func numbered(in domain.NewEvent) bool {
	return in.Legacy == domain.ActivityLogger && in.ID == "" && !in.Sent.Has(domain.MemberID) && in.IdempotencyKey == ""
}

// recordNumbered stores e under the next activity-logger log number. A
// number already taken (by an import that did not reserve its numbers
// first) is skipped, a few times at most.
func (s *Events) recordNumbered(ctx context.Context, p domain.Principal, e domain.Event) (domain.Event, bool, error) {
	for range 3 {
		n, err := s.numbers.NextLegacyID(ctx)
		if err != nil {
			return domain.Event{}, false, fmt.Errorf("record event: number it: %w", err)
		}
		e.ID = domain.LegacyID{System: domain.ActivityLogger, N: n}.ID()
		if stored, created, err := s.create(ctx, p, e); err != nil || created {
			return stored, created, err
		}
	}
	return domain.Event{}, false, fmt.Errorf("record event: three log numbers in a row were taken; reserve the imported ones (activityd import does): %w", domain.ErrUnavailable)
}

// prepare checks the scope, validates in and checks ownership, in that
// order: a credential that may not write learns nothing about validation.
func (s *Events) prepare(p domain.Principal, in domain.NewEvent) (domain.Event, error) {
	if err := need(p, domain.ScopeWrite); err != nil {
		return domain.Event{}, err
	}
	if in.UserID == 0 && !in.Sent.Has(domain.MemberUserID) && !in.Required.Has(domain.MemberUserID) {
		in.UserID = p.UserID
		if in.UserID == 0 {
			return domain.Event{}, domain.Invalid("user_id", domain.CodeRequired, "is required: this credential is bound to no user")
		}
	}
	e, err := s.limits.Validate(in, s.clock.Now())
	if err != nil {
		return domain.Event{}, err
	}
	if e, err = s.private(e); err != nil {
		return domain.Event{}, err
	}
	if err := p.Authorize(domain.ScopeWrite, e.UserID); err != nil {
		return domain.Event{}, err
	}
	if in.ID == "" && !in.Sent.Has(domain.MemberID) && in.IdempotencyKey != "" {
		if len(in.IdempotencyKey) > MaxIdempotencyKey {
			return domain.Event{}, domain.Invalid("Idempotency-Key", domain.CodeTooLong, "must be at most %d characters", MaxIdempotencyKey)
		}
		e.ID = domain.KeyID(e.UserID, in.IdempotencyKey)
	}
	return e, nil
}

// MaxBatch is the most events one batch may hold.
const MaxBatch = 1000

// MaxIdempotencyKey is the longest idempotency key accepted, in bytes.
const MaxIdempotencyKey = 255

// BatchItem is the outcome of one event of a batch: either Err, or the
// Event with Created telling a new event from an idempotent retry.
type BatchItem struct {
	Event   domain.Event
	Created bool
	Err     error
}

// RecordBatch records each event on its own terms: every item succeeds or
// fails alone, exactly as Record would have. The returned error is for the
// batch as a whole (too large, storage unavailable) and then nothing is
// stored.
func (s *Events) RecordBatch(ctx context.Context, p domain.Principal, ins []domain.NewEvent) ([]BatchItem, error) {
	if err := need(p, domain.ScopeWrite); err != nil {
		return nil, err
	}
	if len(ins) == 0 {
		return nil, domain.Invalid("events", domain.CodeRequired, "must hold at least one event")
	}
	if len(ins) > MaxBatch {
		return nil, domain.Invalid("events", domain.CodeTooMany, "must hold at most %d events (got %d)", MaxBatch, len(ins))
	}
	items := make([]BatchItem, len(ins))
	valid := make([]domain.Event, 0, len(ins))
	at := make([]int, 0, len(ins)) // valid[k] is item at[k]
	for i, in := range ins {
		e, err := s.prepare(p, in)
		if err != nil {
			var ve *domain.ValidationError
			if errors.As(err, &ve) {
				err = ve.Prefix(fmt.Sprintf("events[%d].", i))
			}
			items[i].Err = err
			continue
		}
		valid = append(valid, e)
		at = append(at, i)
	}
	if len(valid) == 0 {
		return items, nil
	}
	results, err := s.store.CreateMany(ctx, valid, p.Name)
	if err != nil {
		return nil, fmt.Errorf("record batch: %w", err)
	}
	var users []int64
	for k, r := range results {
		i := at[k]
		switch {
		case r.Created:
			items[i] = BatchItem{Event: r.Event, Created: true}
			s.observer.Recorded(ctx, r.Event.Action)
			if !slices.Contains(users, r.Event.UserID) {
				users = append(users, r.Event.UserID)
			}
		case domain.SameContent(r.Event, valid[k], sentOccurredAt(ins[i])):
			items[i] = BatchItem{Event: r.Event}
		default:
			items[i].Err = fmt.Errorf("%w: %s", domain.ErrIDConflict, valid[k].ID)
		}
	}
	s.invalidate(ctx, users...)
	return items, nil
}

// Get returns one event with its status history. An event of another user
// is domain.ErrNotFound to a non-admin principal, so ids cannot be probed.
func (s *Events) Get(ctx context.Context, p domain.Principal, id string) (domain.Event, []domain.Transition, error) {
	if err := need(p, domain.ScopeRead); err != nil {
		return domain.Event{}, nil, err
	}
	e, err := s.get(ctx, p, id)
	if err != nil {
		return domain.Event{}, nil, err
	}
	h, err := s.store.History(ctx, e.ID)
	if err != nil {
		return domain.Event{}, nil, fmt.Errorf("event history: %w", err)
	}
	return e, h, nil
}

// get loads an event p may see.
func (s *Events) get(ctx context.Context, p domain.Principal, id string) (domain.Event, error) {
	eid, err := domain.ParseID(id)
	if err != nil {
		return domain.Event{}, fmt.Errorf("%w: event %q", domain.ErrNotFound, id)
	}
	e, err := s.store.Get(ctx, eid)
	if err != nil {
		return domain.Event{}, fmt.Errorf("get event: %w", err)
	}
	if !p.IsAdmin() && e.UserID != p.UserID {
		return domain.Event{}, fmt.Errorf("%w: event %s", domain.ErrNotFound, id)
	}
	return e, nil
}

// List returns one page of the events q selects, as p may see them: a
// non-admin principal that names no user lists its own events, and naming
// another user is domain.ErrForbidden. Authorisation happens before the
// cache is consulted, and the cache key holds the filter's user, so a
// cached answer never crosses principals.
//
// view names the rendering the caller answers with: when the cache holds
// it, the Listing carries those bytes; otherwise it carries the page, and
// the caller hands its rendering back with Listing.Keep. view "" reads
// straight from storage.
func (s *Events) List(ctx context.Context, p domain.Principal, q domain.Query, view string) (Listing[domain.Page], error) {
	f, err := s.filter(p, q)
	if err != nil {
		return Listing[domain.Page]{}, err
	}
	load := func(ctx context.Context) (domain.Page, error) {
		page, err := s.store.List(ctx, f)
		if err != nil {
			return domain.Page{}, fmt.Errorf("list events: %w", err)
		}
		return page, nil
	}
	scope := genGlobal
	if f.UserID != 0 {
		scope = genUser(f.UserID)
	}
	return cachedRead(ctx, s.cache, view, scope, func() cacheKey { return listKey(view, f) }, load)
}

// filter validates q and applies p's rights to it.
func (s *Events) filter(p domain.Principal, q domain.Query) (domain.Filter, error) {
	if err := need(p, domain.ScopeRead); err != nil {
		return domain.Filter{}, err
	}
	f, err := s.limits.Filter(q)
	if err != nil {
		return domain.Filter{}, err
	}
	if f.UserID, err = readable(p, f.UserID); err != nil {
		return domain.Filter{}, err
	}
	return f, nil
}

// readable applies p's read rights to a listing that names user (0: no
// one): a non-admin principal that names no one reads its own, and naming
// another user is domain.ErrForbidden.
func readable(p domain.Principal, user int64) (int64, error) {
	if user == 0 && !p.IsAdmin() {
		user = p.UserID
	}
	if err := p.Authorize(domain.ScopeRead, user); err != nil {
		return 0, err
	}
	return user, nil
}

// invalidate tells the read cache, and whoever NotifyWrites named (the
// change feed's waiting readers), that users' events changed.
func (s *Events) invalidate(ctx context.Context, users ...int64) {
	if len(users) == 0 {
		return
	}
	if s.cache != nil {
		s.cache.invalidate(ctx, users...)
	}
	if s.written != nil {
		s.written()
	}
}

// InvalidateAll drops every cached read, for changes that touch many users
// at once (retention dropping old data).
func (s *Events) InvalidateAll(ctx context.Context) {
	if s.cache != nil {
		s.cache.bump(ctx, genEpoch)
	}
}

// Transition moves event id to status to on behalf of p. A move the
// workflow forbids is a *domain.TransitionError; losing a race to a
// concurrent transition is domain.ErrStatusConflict.
func (s *Events) Transition(ctx context.Context, p domain.Principal, id, to string) (domain.Event, error) {
	if err := need(p, domain.ScopeWrite); err != nil {
		return domain.Event{}, err
	}
	target, err := domain.ParseStatus("status", to)
	if err != nil {
		return domain.Event{}, err
	}
	e, err := s.get(ctx, p, id)
	if err != nil {
		return domain.Event{}, err
	}
	if err := e.Status.CanMoveTo(target); err != nil {
		s.observer.Transitioned(ctx, e.Status, target, TransitionInvalid)
		return domain.Event{}, err
	}
	updated, err := s.store.SetStatus(ctx, e.ID, e.Status, target, domain.Normalize(s.clock.Now()), p.Name)
	s.observer.Transitioned(ctx, e.Status, target, transitionResult(err))
	if err != nil {
		return domain.Event{}, fmt.Errorf("transition event %s: %w", e.ID, err)
	}
	s.invalidate(ctx, updated.UserID)
	return updated, nil
}

// need returns domain.ErrForbidden unless p carries scope s.
func need(p domain.Principal, s domain.Scope) error {
	if !p.Has(s) {
		return fmt.Errorf("%w: the credential lacks scope %s", domain.ErrForbidden, s)
	}
	return nil
}

// sentOccurredAt reports whether the client named the event's time, which
// an idempotent retry must then match.
func sentOccurredAt(in domain.NewEvent) bool {
	return in.OccurredAt != "" || in.Sent.Has(domain.MemberOccurredAt)
}
