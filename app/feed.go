package app

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// Feed limits and defaults.
const (
	FeedDefaultLimit = 100
	FeedMaxLimit     = 1000
	FeedMaxWait      = time.Minute
	// DefaultFeedPoll is how often a waiting reader looks for changes that
	// another process made (this process's own writes wake it at once).
	DefaultFeedPoll = 500 * time.Millisecond
)

// Feed is the change feed's use case: the changes after a position, as a
// principal may see them, waiting for them when asked (long poll).
//
// Readers near the head are served from the tail: the latest changes,
// read from the store once for every reader of this process (and for the
// webhook dispatcher, through Changes), so that ten followers cost one
// query per write, not ten. The tail is a contiguous run of positions read
// in order from the store's committed prefix, so serving from it keeps the
// feed's promise: no position is skipped.
type Feed struct {
	store ports.Changes
	poll  time.Duration

	mu   sync.Mutex
	wake chan struct{} // closed, and replaced, by Notify
	gen  uint64        // Notify calls so far

	tailMu    sync.Mutex
	tail      []domain.Change // positions lo+1..hi, in order
	lo, hi    int64           // tail covers (lo, hi]; hi == -1: not read yet
	refreshed time.Time       // when the tail last read the store
	readGen   uint64          // gen when it did
}

// tailSize is how many of the latest changes the tail keeps at least
// (twice as many at most).
const tailSize = 4096

// NewFeed returns the feed over store; waiting readers look at the store
// every poll (0: DefaultFeedPoll) for changes made by other processes.
func NewFeed(store ports.Changes, poll time.Duration) *Feed {
	if poll <= 0 {
		poll = DefaultFeedPoll
	}
	return &Feed{store: store, poll: poll, wake: make(chan struct{}), lo: -1, hi: -1}
}

// Notify wakes every waiting reader: this process stored a change.
func (f *Feed) Notify() {
	f.mu.Lock()
	f.gen++
	close(f.wake)
	f.wake = make(chan struct{})
	f.mu.Unlock()
}

// generation is the number of Notify calls so far.
func (f *Feed) generation() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen
}

// Changed returns a channel closed at the next Notify.
func (f *Feed) Changed() <-chan struct{} { return f.woken() }

func (f *Feed) woken() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wake
}

// FeedQuery is a read of the feed as a client sends it.
type FeedQuery struct {
	After  string // a position ("" or "0": from the start)
	UserID string // "" : p's own (every user's for an admin)
	Limit  string // "": FeedDefaultLimit
	Wait   string // how long to wait for a change when none is there: "30s" or "30"; "": not at all
}

// FeedRead is a validated FeedQuery.
type FeedRead struct {
	After  int64
	UserID int64 // 0: every user's
	Limit  int
	Wait   time.Duration
}

// FeedPage is one read of the feed.
type FeedPage struct {
	Changes []domain.Change
	// Next is the position to continue after: the last change's, or the
	// query's After when there was none.
	Next int64
}

// Parse validates q for p: the fields named in a domain.ValidationError,
// p's read rights applied to the user (a non-admin reads its own changes
// only).
func (f *Feed) Parse(p domain.Principal, q FeedQuery) (FeedRead, error) {
	if err := need(p, domain.ScopeRead); err != nil {
		return FeedRead{}, err
	}
	r := FeedRead{Limit: FeedDefaultLimit}
	ve := &domain.ValidationError{}
	if q.After != "" {
		n, err := strconv.ParseInt(q.After, 10, 64)
		if err != nil || n < 0 {
			ve.Add("after", domain.CodeMalformed, "must be a position: an integer >= 0")
		}
		r.After = n
	}
	if q.Limit != "" {
		n, err := strconv.Atoi(q.Limit)
		if err != nil || n < 1 || n > FeedMaxLimit {
			ve.Add("limit", domain.CodeOutOfRange, "must be an integer from 1 to %d", FeedMaxLimit)
		}
		r.Limit = n
	}
	if q.Wait != "" {
		d, err := parseWait(q.Wait)
		if err != nil || d < 0 || d > FeedMaxWait {
			ve.Add("wait", domain.CodeOutOfRange, "must be a duration from 0s to 60s (\"30s\") or whole seconds (\"30\")")
		}
		r.Wait = d
	}
	if q.UserID != "" {
		n, err := strconv.ParseInt(q.UserID, 10, 64)
		if err != nil || n < 1 {
			ve.Add("user_id", domain.CodeMalformed, "must be a positive integer")
		}
		r.UserID = n
	}
	if err := ve.OrNil(); err != nil {
		return FeedRead{}, err
	}
	var err error
	if r.UserID, err = readable(p, r.UserID); err != nil {
		return FeedRead{}, err
	}
	return r, nil
}

func parseWait(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}

// List parses q for p, checks its position (Check) and reads the feed
// (Read).
func (f *Feed) List(ctx context.Context, p domain.Principal, q FeedQuery) (FeedPage, error) {
	r, err := f.Parse(p, q)
	if err != nil {
		return FeedPage{}, err
	}
	if err := f.Check(ctx, r); err != nil {
		return FeedPage{}, err
	}
	return f.Read(ctx, r)
}

// Check refuses a position beyond the feed's last one: no reader was ever
// given it, and waiting there would skip every change up to it.
func (f *Feed) Check(ctx context.Context, r FeedRead) error {
	f.tailMu.Lock()
	known := f.hi
	f.tailMu.Unlock()
	if r.After <= known {
		return nil
	}
	head, err := f.store.FeedHead(ctx)
	if err != nil {
		return fmt.Errorf("read the change feed's head: %w", err)
	}
	if r.After > head {
		return domain.Invalid("after", domain.CodeOutOfRange, "is beyond the feed's last position, %d: continue from a position the feed gave", head)
	}
	return nil
}

// Read returns the changes r selects; when there are none and r.Wait > 0
// it waits up to r.Wait for some. An empty page after the wait is not an
// error. r must come from Parse (which applied the principal's rights).
func (f *Feed) Read(ctx context.Context, r FeedRead) (FeedPage, error) {
	var deadline <-chan time.Time
	if r.Wait > 0 {
		t := time.NewTimer(r.Wait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		wake := f.woken() // before reading: a change stored after the read wakes us
		// A read that does not wait wants what is committed now; waiting
		// ones are woken when it changes (here, or at the poll).
		cs, upTo, err := f.read(ctx, domain.ChangeFilter{After: r.After, UserID: r.UserID, Limit: r.Limit}, r.Wait == 0)
		if err != nil {
			return FeedPage{}, fmt.Errorf("read the change feed: %w", err)
		}
		if len(cs) > 0 {
			return FeedPage{Changes: cs, Next: cs[len(cs)-1].Position}, nil
		}
		// None of r's up to upTo: continue from there.
		r.After = max(r.After, upTo)
		if deadline == nil {
			return FeedPage{Changes: cs, Next: r.After}, nil
		}
		poll := time.NewTimer(f.poll)
		select {
		case <-wake:
		case <-poll.C:
		case <-deadline:
			poll.Stop()
			return FeedPage{Changes: cs, Next: r.After}, nil
		case <-ctx.Done():
			poll.Stop()
			return FeedPage{}, fmt.Errorf("read the change feed: %w", ctx.Err())
		}
		poll.Stop()
	}
}

// Changes implements ports.Changes over the tail, for readers of this
// process that follow the feed without a principal (the webhook
// dispatcher).
func (f *Feed) Changes(ctx context.Context, filter domain.ChangeFilter) ([]domain.Change, error) {
	cs, _, err := f.read(ctx, filter, false)
	return cs, err
}

// FeedHead implements ports.Changes.
func (f *Feed) FeedHead(ctx context.Context) (int64, error) { return f.store.FeedHead(ctx) }

// read returns the changes filter selects, from the tail when filter.After
// lies in it (refreshing it from the store when filter.After is at its
// end and the store may hold more: fresh, or notified since), from the
// store otherwise. upTo is the last position it looked at:
// filter's user had no change between filter.After and upTo.
func (f *Feed) read(ctx context.Context, filter domain.ChangeFilter, fresh bool) (cs []domain.Change, upTo int64, err error) {
	f.tailMu.Lock()
	defer f.tailMu.Unlock()
	if f.hi < 0 { // the tail starts at the head: older changes come from the store
		head, err := f.store.FeedHead(ctx)
		if err != nil {
			return nil, 0, err
		}
		f.lo, f.hi = head, head
	}
	// Refresh when the reader is at (or past) the tail's end, and at least
	// every poll otherwise: another process's erasure reaches the tail by
	// its change, and a tail that stopped being read must not serve what
	// was erased since.
	// At the end, only when this process stored something since the last
	// read of the store (or a poll went by: another process may have).
	stale := time.Since(f.refreshed) > f.poll
	if stale || filter.After >= f.hi && (fresh || f.generation() != f.readGen) {
		if err := f.refresh(ctx); err != nil {
			return nil, 0, err
		}
	}
	if filter.After < f.lo || filter.After > f.hi {
		// Before the tail, or past it (a position another replica gave):
		// the store answers.
		f.tailMu.Unlock()
		cs, err := f.store.Changes(ctx, filter)
		f.tailMu.Lock()
		return cs, filter.After, err
	}
	// Positions in the tail increase, with holes where retention removed
	// an event: search rather than index.
	first := sort.Search(len(f.tail), func(i int) bool { return f.tail[i].Position > filter.After })
	for i := first; i < len(f.tail) && len(cs) < filter.Limit; i++ {
		c := f.tail[i]
		upTo = c.Position
		if filter.UserID == 0 || c.UserID() == filter.UserID {
			cs = append(cs, c)
		}
	}
	if len(cs) < filter.Limit {
		upTo = f.hi // looked at every change up to hi
	}
	if cs == nil {
		cs = []domain.Change{}
	}
	return cs, max(upTo, filter.After), nil
}

// Erased empties the metadata erasure e removed from the tail at once
// (other processes' tails do it when they read e's change).
func (f *Feed) Erased(e domain.Erasure) {
	f.tailMu.Lock()
	f.erased(e)
	f.tailMu.Unlock()
}

// erased empties, in the tail, the metadata an erasure removed from the
// store (whichever process made it), so the tail never serves it again.
func (f *Feed) erased(e domain.Erasure) {
	for i := range f.tail {
		ev := &f.tail[i].Event
		if f.tail[i].Erasure == nil && ev.UserID == e.UserID &&
			(e.From.IsZero() || !ev.RecordedAt.Before(e.From)) && (e.To.IsZero() || ev.RecordedAt.Before(e.To)) {
			ev.Metadata = domain.EmptyMetadata()
		}
	}
}

// refresh appends the next page of changes after hi to the tail (one
// store read: a reader never waits for more than one, however fast the
// writers), dropping the oldest beyond tailSize; the caller holds tailMu.
func (f *Feed) refresh(ctx context.Context) error {
	gen := f.generation() // before reading: a change notified later makes another refresh
	cs, err := f.store.Changes(ctx, domain.ChangeFilter{After: f.hi, Limit: FeedMaxLimit})
	if err != nil {
		return err
	}
	f.refreshed, f.readGen = time.Now(), gen
	if len(cs) == FeedMaxLimit {
		f.readGen = gen - 1 // more to read: the next reader at the end refreshes again
	}
	if len(cs) == FeedMaxLimit {
		// Far behind (an idle tail): start again at the head rather than
		// page through; readers behind it read the store.
		head, err := f.store.FeedHead(ctx)
		if err != nil {
			return err
		}
		if head-cs[len(cs)-1].Position > tailSize {
			f.tail, f.lo, f.hi = nil, head, head
			return nil
		}
	}
	if len(cs) == 0 {
		return nil
	}
	// A change whose event retention removed is left out by the store:
	// its position is then missing here, which is right (it is gone).
	for _, c := range cs {
		if c.Erasure != nil {
			f.erased(*c.Erasure)
		}
	}
	f.tail = append(f.tail, cs...)
	f.hi = cs[len(cs)-1].Position
	if n := len(f.tail); n > 2*tailSize { // trimmed by halves: one copy per tailSize changes
		f.tail = append(make([]domain.Change, 0, 2*tailSize+FeedMaxLimit), f.tail[n-tailSize:]...)
	}
	f.lo = f.tail[0].Position - 1
	return nil
}
