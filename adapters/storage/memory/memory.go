// Package memory is an in-process store for tests and experiments
// (DATABASE_URL=memory:). It keeps nothing across restarts. It passes the
// same contract suite as the SQL stores, so tests that use it say something
// about production.
package memory

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

func init() {
	storage.Register("memory", func(context.Context, string, storage.Options) (ports.Store, error) {
		return New(), nil
	})
}

// Store is the in-memory store. The zero value is not usable; call New.
type Store struct {
	mu      sync.RWMutex
	events  map[domain.ID]*record
	ordered []*record // insertion order, for scans
	tokens  []domain.Token
	closed  bool
	legacy  int64 // the last log number handed out or reserved

	counts    map[int64]*windowCounts // computed windows by start (Unix µs)
	watermark domain.Window

	ledger ledger   // ports.CacheLedger, under its own lock
	hooks  webhooks // ports.Webhooks, under its own lock

	changes []change // the change feed: position i+1 is changes[i]
	ev      evidence // the chains' heads and the checkpoints
}

// windowCounts is one computed window: per user, per action.
type windowCounts struct {
	w     domain.Window
	users map[int64]map[domain.Action]int64
}

type record struct {
	e       domain.Event
	history []domain.Transition
}

// New returns an empty store.
func New() *Store {
	return &Store{events: map[domain.ID]*record{}, counts: map[int64]*windowCounts{}}
}

var _ ports.Store = (*Store)(nil)

// Migrate does nothing: there is no schema.
func (s *Store) Migrate(context.Context) error { return nil }

// Ping reports an error once the store is closed.
func (s *Store) Ping(context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return domain.ErrUnavailable
	}
	return nil
}

// Close marks the store closed.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

func clone(e domain.Event) domain.Event {
	e.Metadata = bytes.Clone(e.Metadata)
	return e
}

// Create implements ports.Events.
func (s *Store) Create(ctx context.Context, e domain.Event, by string) (domain.Event, bool, error) {
	if err := ctx.Err(); err != nil {
		return domain.Event{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return domain.Event{}, false, domain.ErrUnavailable
	}
	st, created := s.create(e, by)
	return st, created, nil
}

func (s *Store) create(e domain.Event, by string) (domain.Event, bool) {
	if r, ok := s.events[e.ID]; ok {
		return clone(r.e), false
	}
	r := &record{e: clone(e), history: []domain.Transition{{To: domain.StatusPending, At: e.RecordedAt, By: by}}}
	s.events[e.ID] = r
	s.ordered = append(s.ordered, r)
	s.appendChange(change{kind: domain.ChangeRecorded, at: e.RecordedAt, status: e.Status, updated: e.UpdatedAt, r: r})
	return clone(e), true
}

// CreateMany implements ports.Events.
func (s *Store) CreateMany(ctx context.Context, es []domain.Event, by string) ([]ports.Created, error) {
	return s.createMany(ctx, es, by, false)
}

// Import implements ports.Imports.
func (s *Store) Import(ctx context.Context, es []domain.Event, by string) ([]ports.Created, error) {
	return s.createMany(ctx, es, by, true)
}

// createMany stores es under one lock; steps adds the workflow's steps to
// each created event's status to its history (Import).
func (s *Store) createMany(ctx context.Context, es []domain.Event, by string, steps bool) ([]ports.Created, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, domain.ErrUnavailable
	}
	out := make([]ports.Created, len(es))
	for i, e := range es {
		out[i].Event, out[i].Created = s.create(e, by)
		if steps && out[i].Created {
			r := s.events[e.ID]
			r.history = append(r.history, domain.StepsTo(e.Status, e.UpdatedAt, by)...)
		}
	}
	return out, nil
}

// NextLegacyID implements ports.Imports.
func (s *Store) NextLegacyID(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, domain.ErrUnavailable
	}
	s.legacy++
	return s.legacy, nil
}

// ReserveLegacyIDs implements ports.Imports.
func (s *Store) ReserveLegacyIDs(ctx context.Context, n int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return domain.ErrUnavailable
	}
	s.legacy = max(s.legacy, n)
	return nil
}

// Get implements ports.Events.
func (s *Store) Get(ctx context.Context, id domain.ID) (domain.Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return domain.Event{}, domain.ErrUnavailable
	}
	r, ok := s.events[id]
	if !ok {
		return domain.Event{}, domain.ErrNotFound
	}
	return clone(r.e), nil
}

// History implements ports.Events.
func (s *Store) History(ctx context.Context, id domain.ID) ([]domain.Transition, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.events[id]
	if !ok {
		return nil, domain.ErrNotFound
	}
	return slices.Clone(r.history), nil
}

// List implements ports.Events by scanning every event.
func (s *Store) List(ctx context.Context, f domain.Filter) (domain.Page, error) {
	if err := ctx.Err(); err != nil {
		return domain.Page{}, err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return domain.Page{}, domain.ErrUnavailable
	}
	var hits []domain.Event
	for _, r := range s.ordered {
		if matches(f, r.e) {
			hits = append(hits, clone(r.e))
		}
	}
	s.mu.RUnlock()

	slices.SortFunc(hits, func(a, b domain.Event) int {
		c := cmp.Or(f.TimeOf(a).Compare(f.TimeOf(b)), bytes.Compare(a.ID[:], b.ID[:]))
		if f.Order == domain.Desc {
			return -c
		}
		return c
	})
	if f.Offset > 0 {
		hits = hits[min(f.Offset, len(hits)):]
	}
	return f.Page(hits), nil
}

func matches(f domain.Filter, e domain.Event) bool {
	if f.UserID != 0 && e.UserID != f.UserID {
		return false
	}
	if len(f.Actions) > 0 && !slices.Contains(f.Actions, e.Action) {
		return false
	}
	if f.Status != "" && e.Status != f.Status {
		return false
	}
	t := f.TimeOf(e)
	if !f.From.IsZero() && t.Before(f.From) {
		return false
	}
	if !f.To.IsZero() && !t.Before(f.To) {
		return false
	}
	if c := f.After; c != nil {
		k := cmp.Or(t.Compare(c.Time), bytes.Compare(e.ID[:], c.ID[:]))
		if f.Order == domain.Desc {
			return k < 0
		}
		return k > 0
	}
	return true
}

// SetStatus implements ports.Events.
func (s *Store) SetStatus(ctx context.Context, id domain.ID, from, to domain.Status, at time.Time, by string) (domain.Event, error) {
	if err := ctx.Err(); err != nil {
		return domain.Event{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return domain.Event{}, domain.ErrUnavailable
	}
	r, ok := s.events[id]
	if !ok {
		return domain.Event{}, domain.ErrNotFound
	}
	if r.e.Status != from {
		return domain.Event{}, domain.ErrStatusConflict
	}
	r.e.Status, r.e.UpdatedAt = to, at
	r.history = append(r.history, domain.Transition{From: from, To: to, At: at, By: by})
	s.appendChange(change{kind: domain.ChangeStatus, at: at, status: to, updated: at, r: r})
	return clone(r.e), nil
}

// CountWindow implements ports.Events.
func (s *Store) CountWindow(ctx context.Context, start, end time.Time) ([]domain.UserCount, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	byUser := map[int64]*domain.UserCount{}
	for _, r := range s.ordered {
		t := r.e.RecordedAt
		if t.Before(start) || !t.Before(end) {
			continue
		}
		c := byUser[r.e.UserID]
		if c == nil {
			c = &domain.UserCount{UserID: r.e.UserID, ByAction: map[domain.Action]int64{}}
			byUser[r.e.UserID] = c
		}
		c.Total++
		c.ByAction[r.e.Action]++
	}
	out := make([]domain.UserCount, 0, len(byUser))
	for _, c := range byUser {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b domain.UserCount) int { return cmp.Compare(a.UserID, b.UserID) })
	return out, nil
}

// ComputeWindow implements ports.Counts. The store's lock makes it atomic:
// concurrent computations of a window run one after the other.
func (s *Store) ComputeWindow(ctx context.Context, w domain.Window, at time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if !w.Valid() {
		return 0, fmt.Errorf("memory: compute window %s: end is not after start", w)
	}
	w = domain.Window{Start: domain.Normalize(w.Start), End: domain.Normalize(w.End)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, domain.ErrUnavailable
	}
	wc := &windowCounts{w: w, users: map[int64]map[domain.Action]int64{}}
	for _, r := range s.ordered {
		if !w.Contains(r.e.RecordedAt) {
			continue
		}
		byAction := wc.users[r.e.UserID]
		if byAction == nil {
			byAction = map[domain.Action]int64{}
			wc.users[r.e.UserID] = byAction
		}
		byAction[r.e.Action]++
	}
	s.counts[w.Start.UnixMicro()] = wc
	if w.End.After(s.watermark.End) {
		s.watermark = w
	}
	return len(wc.users), nil
}

// Watermark implements ports.Counts.
func (s *Store) Watermark(ctx context.Context) (domain.Window, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return domain.Window{}, domain.ErrUnavailable
	}
	return s.watermark, nil
}

// ListCounts implements ports.Counts by scanning every computed window.
func (s *Store) ListCounts(ctx context.Context, f domain.CountFilter) (domain.CountPage, error) {
	if err := ctx.Err(); err != nil {
		return domain.CountPage{}, err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return domain.CountPage{}, domain.ErrUnavailable
	}
	var hits []domain.WindowCount
	for _, wc := range s.counts {
		if !f.From.IsZero() && wc.w.Start.Before(f.From) || !f.To.IsZero() && !wc.w.Start.Before(f.To) {
			continue
		}
		for user, byAction := range wc.users {
			if f.UserID != 0 && user != f.UserID {
				continue
			}
			c := domain.WindowCount{Start: wc.w.Start, End: wc.w.End,
				UserCount: domain.UserCount{UserID: user, ByAction: make(map[domain.Action]int64, len(byAction))}}
			for a, n := range byAction {
				c.ByAction[a] = n
				c.Total += n
			}
			hits = append(hits, c)
		}
	}
	s.mu.RUnlock()

	key := func(start time.Time, user int64) func(domain.WindowCount) int {
		return func(c domain.WindowCount) int {
			k := cmp.Or(c.Start.Compare(start), cmp.Compare(c.UserID, user))
			if f.Order == domain.Desc {
				return -k
			}
			return k
		}
	}
	slices.SortFunc(hits, func(a, b domain.WindowCount) int { return key(b.Start, b.UserID)(a) })
	if c := f.After; c != nil {
		after := key(c.WindowStart, c.UserID)
		hits = slices.DeleteFunc(hits, func(h domain.WindowCount) bool { return after(h) <= 0 })
	}
	page := f.Page(hits)
	if page.Counts == nil {
		page.Counts = []domain.WindowCount{}
	}
	return page, nil
}

func cloneToken(t domain.Token) domain.Token {
	t.Scopes = slices.Clone(t.Scopes)
	t.Hash = bytes.Clone(t.Hash)
	return t
}

// errDuplicateToken is what a SQL store's unique constraints would say.
var errDuplicateToken = errors.New("memory: a token with this id or hash exists")

// CreateToken implements ports.Tokens.
func (s *Store) CreateToken(ctx context.Context, t domain.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return domain.ErrUnavailable
	}
	for _, o := range s.tokens {
		if o.ID == t.ID || bytes.Equal(o.Hash, t.Hash) {
			return errDuplicateToken
		}
	}
	s.tokens = append(s.tokens, cloneToken(t))
	return nil
}

// TokenByHash implements ports.Tokens.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (domain.Token, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return domain.Token{}, domain.ErrUnavailable
	}
	for _, t := range s.tokens {
		if bytes.Equal(t.Hash, hash) {
			return cloneToken(t), nil
		}
	}
	return domain.Token{}, domain.ErrNotFound
}

// ListTokens implements ports.Tokens: oldest first.
func (s *Store) ListTokens(ctx context.Context) ([]domain.Token, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, domain.ErrUnavailable
	}
	out := make([]domain.Token, len(s.tokens))
	for i, t := range s.tokens {
		out[i] = cloneToken(t)
	}
	slices.SortStableFunc(out, func(a, b domain.Token) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// RevokeToken implements ports.Tokens.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.tokens {
		if s.tokens[i].ID == id {
			if s.tokens[i].RevokedAt.IsZero() {
				s.tokens[i].RevokedAt = at
			}
			return nil
		}
	}
	return domain.ErrNotFound
}
