package app

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// Imports is activityd import: a predecessor's events checked against the
// rules every event obeys, stored in their own status and time through the
// store's batch path, the read cache told, and the counting windows they
// fall in recounted, so that counts include history.
type Imports struct {
	store  ports.Imports
	events *Events // its read cache forgets the users imported
	counts *Counts // recounts the windows imported events fall in
	clock  ports.Clock
	// windows the imported events fall in, by start (Unix µs).
	windows map[int64]domain.Window
	last    domain.Window // the window of the previous event: most are in it
}

// NewImports returns the import use case over store; events and counts are
// the service's use cases, whose caches and counts it keeps true.
func NewImports(store ports.Imports, events *Events, counts *Counts, clock ports.Clock) *Imports {
	return &Imports{store: store, events: events, counts: counts, clock: clock, windows: map[int64]domain.Window{}}
}

// Check applies the rules to one predecessor event: nil, or a
// *domain.ValidationError saying what is wrong, by field (a dry run).
func (im *Imports) Check(row domain.Past) error {
	_, err := im.events.limits.Imported(row, im.clock.Now())
	return err
}

// Reserve keeps the activity-logger log numbers up to n for the events an
// import brings in: logs created meanwhile on the activity-logger surface
// are numbered above them. p must be an admin.
func (im *Imports) Reserve(ctx context.Context, p domain.Principal, n int64) error {
	if err := need(p, domain.ScopeAdmin); err != nil {
		return err
	}
	if err := im.store.ReserveLegacyIDs(ctx, n); err != nil {
		return fmt.Errorf("reserve log numbers up to %d: %w", n, err)
	}
	return nil
}

// Outcome is what became of one predecessor event.
type Outcome int

// The outcomes of an imported event.
const (
	Imported       Outcome = iota // stored now
	AlreadyPresent                // stored by an earlier run: identical
	Taken                         // its id holds another event: not stored
	Refused                       // it breaks a rule (Result.Err says which): not stored
)

// Result is the outcome of one predecessor event; Err says why when it was
// Refused.
type Result struct {
	Outcome Outcome
	Err     error
}

// Store checks rows and stores those that pass as one batch, all or
// nothing, on behalf of p (an admin; its Name signs their history, e.g.
// "import:activity-logger"). A row whose id already holds the same event
// is AlreadyPresent (a re-run); one whose id holds a different event is
// Taken. The returned error is the batch's: then nothing is stored.
func (im *Imports) Store(ctx context.Context, p domain.Principal, rows []domain.Past) ([]Result, error) {
	if err := need(p, domain.ScopeAdmin); err != nil {
		return nil, err
	}
	out := make([]Result, len(rows))
	es := make([]domain.Event, 0, len(rows))
	idx := make([]int, 0, len(rows))
	now := im.clock.Now()
	for i, row := range rows {
		e, err := im.events.limits.Imported(row, now)
		if err == nil {
			e, err = im.events.private(e)
		}
		if err != nil {
			out[i] = Result{Outcome: Refused, Err: err}
			continue
		}
		es, idx = append(es, e), append(idx, i)
	}
	if len(es) == 0 {
		return out, nil
	}
	res, err := im.store.Import(ctx, es, p.Name)
	if err != nil {
		return nil, fmt.Errorf("import %d events: %w", len(es), err)
	}
	var users []int64
	for k, r := range res {
		i := idx[k]
		switch {
		case r.Created:
			out[i].Outcome = Imported
			if !slices.Contains(users, r.Event.UserID) {
				users = append(users, r.Event.UserID)
			}
			im.note(r.Event.RecordedAt)
		case same(r.Event, es[k]):
			out[i].Outcome = AlreadyPresent
			im.note(r.Event.RecordedAt) // a resumed run recounts it too
		default:
			out[i].Outcome = Taken
		}
	}
	im.events.invalidate(ctx, users...)
	return out, nil
}

// same reports whether stored is the imported event e, as far as an
// import can tell: the same user, action and recorded time.
func same(stored, e domain.Event) bool {
	return stored.UserID == e.UserID && stored.Action == e.Action && stored.RecordedAt.Equal(e.RecordedAt)
}

// note remembers the counting window that holds t.
func (im *Imports) note(t time.Time) {
	if im.last.Contains(t) {
		return
	}
	w, ok := domain.WindowAt(im.counts.schedule, t)
	if !ok {
		return
	}
	im.last = w
	im.windows[w.Start.UnixMicro()] = w
}

// Recount computes every closed window (due, as the counting job sees it)
// that holds an event stored or found by Store, oldest first, and returns
// them with the windows left for the job (still open). Computing a window
// replaces its earlier result, so a recount is idempotent. p must be an
// admin.
func (im *Imports) Recount(ctx context.Context, p domain.Principal) (done []domain.Window, open int, err error) {
	if err := need(p, domain.ScopeAdmin); err != nil {
		return nil, 0, err
	}
	ws := make([]domain.Window, 0, len(im.windows))
	for _, w := range im.windows {
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b domain.Window) int { return a.Start.Compare(b.Start) })
	due := im.clock.Now().Add(-im.counts.settle)
	for _, w := range ws {
		if w.End.After(due) {
			open++
			continue
		}
		if _, err := im.counts.Compute(ctx, w); err != nil {
			return done, open, err
		}
		done = append(done, w)
	}
	return done, open, nil
}
