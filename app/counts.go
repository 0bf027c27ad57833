package app

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// DefaultMaxCatchup is how many missed windows a run catches up when
// CountsConfig.MaxCatchup is 0: one week of the default 4-hourly windows.
const DefaultMaxCatchup = 42

// CountsConfig configures the counting use cases.
type CountsConfig struct {
	// Schedule cuts time into windows (domain.DueWindows); nil: no window
	// is ever due (the listing still works).
	Schedule domain.Schedule
	// MaxCatchup bounds how many windows one run computes after a gap;
	// older ones are skipped (and logged by the runner). 0: DefaultMaxCatchup.
	MaxCatchup int
	// Settle is how long after a window's end it becomes due, so that
	// writes in flight at the boundary (recorded_at taken, not yet
	// committed) are in the window when it is counted. 0: none.
	Settle time.Duration
	// Jobs receives the windows an admin asks to compute now (Trigger);
	// nil: Trigger computes them itself before returning.
	Jobs ports.Jobs
	// Cache caches List reads, like the event lists; the zero value: none.
	Cache CacheConfig
	// Observer hears each window computed (metrics); nil: none.
	Observer Observer
	// Live counts the events of the open window as they are, for
	// provisional counts (CountListOptions.Provisional); nil: the store,
	// when it can (every ports.Store can: ports.Events.CountWindow).
	Live LiveCounter
}

// LiveCounter counts the events recorded in [start, end), per user and
// per action: the part of ports.Events that provisional counts need.
type LiveCounter interface {
	CountWindow(ctx context.Context, start, end time.Time) ([]domain.UserCount, error)
}

// Counts is the counting use cases: the job that computes closed windows
// (Plan, Compute, RunDue: what a jobs adapter runs, whichever it is), the
// admin's "run now" (Trigger), and reading the results (List).
type Counts struct {
	store      ports.Counts
	clock      ports.Clock
	schedule   domain.Schedule
	maxCatchup int
	settle     time.Duration
	jobs       ports.Jobs
	cache      *readCache  // nil: reads are not cached
	observer   Observer    // never nil
	live       LiveCounter // nil: no provisional counts
}

var _ ports.CountJob = (*Counts)(nil)

// NewCounts returns the counting use cases over store.
func NewCounts(store ports.Counts, clock ports.Clock, cfg CountsConfig) *Counts {
	if cfg.MaxCatchup <= 0 {
		cfg.MaxCatchup = DefaultMaxCatchup
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.Live == nil {
		cfg.Live, _ = store.(LiveCounter)
	}
	return &Counts{
		store:      store,
		clock:      clock,
		schedule:   cfg.Schedule,
		maxCatchup: cfg.MaxCatchup,
		settle:     max(cfg.Settle, 0),
		jobs:       cfg.Jobs,
		cache:      newReadCache(cfg.Cache),
		observer:   cfg.Observer,
		live:       cfg.Live,
	}
}

// OpenWindow returns the window open at now, the one the schedule closes
// next (domain.WindowAt): events recorded now are counted when it has
// closed and settled. ok is false without a schedule.
func (c *Counts) OpenWindow(now time.Time) (w domain.Window, ok bool) {
	return domain.WindowAt(c.schedule, domain.Normalize(now))
}

// Plan returns the windows due at now, oldest first, and how many older
// ones the catch-up bound skipped: domain.DueWindows over the stored
// watermark, with windows due Settle after they close.
func (c *Counts) Plan(ctx context.Context, now time.Time) ([]domain.Window, int, error) {
	wm, err := c.store.Watermark(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("read the counting watermark: %w", err)
	}
	due, skipped := domain.DueWindows(c.schedule, wm.End, now.Add(-c.settle), c.maxCatchup)
	return due, skipped, nil
}

// Lag is how far counting is behind its schedule at now: the time since
// the oldest window still uncounted became due (Settle after it closed),
// or 0 when every due window is counted. Windows the catch-up bound will
// never compute do not count.
func (c *Counts) Lag(ctx context.Context, now time.Time) (time.Duration, error) {
	due, _, err := c.Plan(ctx, now)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	return max(now.Sub(due[0].End.Add(c.settle)), 0), nil
}

// Compute computes one window (replacing an earlier result) and then
// invalidates cached count reads. It is what a job runs.
func (c *Counts) Compute(ctx context.Context, w domain.Window) (int, error) {
	if !w.Valid() {
		return 0, domain.Invalid("window", domain.CodeConflict, "end must be after start: %s", w)
	}
	began := time.Now()
	users, err := c.store.ComputeWindow(ctx, w, domain.Normalize(c.clock.Now()))
	c.observer.Computed(ctx, w, users, time.Since(began), err)
	if err != nil {
		return 0, fmt.Errorf("compute window %s: %w", w, err)
	}
	if c.cache != nil {
		c.cache.bump(ctx, genCounts)
	}
	return users, nil
}

// RunDue computes every window due at now, oldest first, so the watermark
// advances window by window: a run that fails part way leaves the rest
// due for the next run. It returns the windows computed, how many the
// catch-up bound skipped, and the first error. Concurrent runs (replicas,
// overlapping ticks) are harmless: each window's computation is
// idempotent and serialised by the store.
func (c *Counts) RunDue(ctx context.Context, now time.Time) ([]domain.Window, int, error) {
	due, skipped, err := c.Plan(ctx, now)
	if err != nil {
		return nil, 0, err
	}
	for i, w := range due {
		if _, err := c.Compute(ctx, w); err != nil {
			return due[:i], skipped, err
		}
	}
	return due, skipped, nil
}

// Run is what an admin's "compute now" did: the windows handed over and
// how many older ones the catch-up bound skipped, and the window open at
// the run (zero without a schedule), which no run computes: the events
// just recorded are in it, and are counted once it has closed.
type Run struct {
	Windows []domain.Window
	Skipped int
	Open    domain.Window
}

// Trigger is an admin's "compute now": the windows due now are handed to
// the jobs (or, without jobs, computed before returning). When none is
// due, the last computed window is computed again (idempotent; it picks
// up anything that reached storage after it was counted).
func (c *Counts) Trigger(ctx context.Context, p domain.Principal) (Run, error) {
	if !p.IsAdmin() {
		return Run{}, fmt.Errorf("%w: only an admin may run the counting job", domain.ErrForbidden)
	}
	now := c.clock.Now()
	due, skipped, err := c.Plan(ctx, now)
	if err != nil {
		return Run{}, err
	}
	open, _ := c.OpenWindow(now)
	if len(due) == 0 {
		wm, err := c.store.Watermark(ctx)
		if err != nil {
			return Run{}, fmt.Errorf("read the counting watermark: %w", err)
		}
		if wm.Valid() {
			due = []domain.Window{wm}
		}
	}
	run := Run{Windows: due, Skipped: skipped, Open: open}
	if run.Windows == nil {
		run.Windows = []domain.Window{}
	}
	if len(due) == 0 {
		return run, nil
	}
	if c.jobs != nil {
		if err := c.jobs.Enqueue(ctx, due); err != nil {
			return Run{}, fmt.Errorf("enqueue counting windows: %w", err)
		}
		return run, nil
	}
	for _, w := range due {
		if _, err := c.Compute(ctx, w); err != nil {
			return Run{}, err
		}
	}
	return run, nil
}

// CountsPage is one page of counts as List answers it: the computed
// counts (domain.CountPage), the window open at the read, and, when asked
// for, the open window's provisional counts.
type CountsPage struct {
	domain.CountPage
	// Open is the window open at the read (OpenWindow); zero without a
	// schedule.
	Open domain.Window
	// Provisional holds, when CountListOptions.Provisional asked for them
	// and on the first page only (no cursor), the counts of the open
	// window so far, counted from the events at the read: Start is the
	// open window's start (or the counting watermark, when that lies
	// inside it), End the time of the read. They are never stored, so
	// nothing replaces them: the computed window appears in the listing
	// once the job has counted it. Users are ordered as the listing is.
	Provisional []domain.WindowCount
}

// CountListOptions are List's options beyond the filter.
type CountListOptions struct {
	// Provisional asks for the open window's counts so far
	// (CountsPage.Provisional).
	Provisional bool
}

// ParseProvisional reads the provisional parameter of a count listing as
// sent: "" (absent) and "false" are false, "true" is true, anything else
// is a domain.ValidationError naming it.
func ParseProvisional(s string) (bool, error) {
	switch s {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, domain.Invalid("provisional", domain.CodeNotOneOf, "must be true or false")
}

// List returns one page of the computed counts q selects, as p may see
// them, with the same ownership rules as event lists: a non-admin
// principal that names no user reads its own counts, and naming another
// user is domain.ErrForbidden. view is as for Events.List; cached pages
// are keyed by the counts generation, which every computed window bumps,
// by the open window (so a cached page never names a window that has
// closed since), and by the normalised filter, user included.
//
// With opts.Provisional, the first page also carries the open window's
// counts so far, counted live under the same ownership rules and filter
// (user, and from/to on the window's start), and that read is not cached
// at all: a provisional count is right only at the moment it is taken,
// and the client asking for it is the one checking that the event it
// just recorded is there (see CountsPage.Provisional).
func (c *Counts) List(ctx context.Context, p domain.Principal, q domain.CountQuery, opts CountListOptions, view string) (Listing[CountsPage], error) {
	if err := need(p, domain.ScopeRead); err != nil {
		return Listing[CountsPage]{}, err
	}
	f, err := domain.ParseCountQuery(q)
	if err != nil {
		return Listing[CountsPage]{}, err
	}
	if f.UserID, err = readable(p, f.UserID); err != nil {
		return Listing[CountsPage]{}, err
	}
	now := domain.Normalize(c.clock.Now())
	open, _ := c.OpenWindow(now)
	load := func(ctx context.Context) (CountsPage, error) {
		page, err := c.store.ListCounts(ctx, f)
		if err != nil {
			return CountsPage{}, fmt.Errorf("list activity counts: %w", err)
		}
		return CountsPage{CountPage: page, Open: open}, nil
	}
	if !opts.Provisional {
		return cachedRead(ctx, c.cache, view, genCounts, func() cacheKey { return countKey(view, f, open) }, load)
	}
	if c.live == nil {
		return Listing[CountsPage]{}, domain.Invalid("provisional", domain.CodeUnsupported, "this server cannot count events live")
	}
	page, err := load(ctx)
	if err != nil {
		return Listing[CountsPage]{}, err
	}
	if f.After == nil && open.Valid() {
		if page.Provisional, err = c.provisional(ctx, f, open, now); err != nil {
			return Listing[CountsPage]{}, err
		}
	}
	if c.cache != nil && view != "" {
		c.cache.observe(view, CacheBypass)
	}
	return Listing[CountsPage]{Page: page, Cache: CacheBypass}, nil
}

// provisional counts the events of the open window recorded up to now
// that f selects. The window starts at the counting watermark when that
// lies inside it (the schedule was changed), as the job will count it.
func (c *Counts) provisional(ctx context.Context, f domain.CountFilter, open domain.Window, now time.Time) ([]domain.WindowCount, error) {
	wm, err := c.store.Watermark(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the counting watermark: %w", err)
	}
	start := open.Start
	if wm.End.After(start) {
		start = wm.End
	}
	if !now.After(start) || (!f.From.IsZero() && start.Before(f.From)) || (!f.To.IsZero() && !start.Before(f.To)) {
		return []domain.WindowCount{}, nil
	}
	users, err := c.live.CountWindow(ctx, start, now)
	if err != nil {
		return nil, fmt.Errorf("count the open window %s: %w", domain.Window{Start: start, End: now}, err)
	}
	out := make([]domain.WindowCount, 0, len(users))
	for _, u := range users {
		if f.UserID == 0 || u.UserID == f.UserID {
			out = append(out, domain.WindowCount{UserCount: u, Start: start, End: now})
		}
	}
	slices.SortFunc(out, func(a, b domain.WindowCount) int {
		if f.Order == domain.Desc {
			a, b = b, a
		}
		return cmp.Compare(a.UserID, b.UserID)
	})
	return out, nil
}

// countKey is the cache key of a count filter rendered by a view.
func countKey(view string, f domain.CountFilter, open domain.Window) cacheKey {
	var b strings.Builder
	fmt.Fprintf(&b, "u=%d;o=%s;l=%d;open=%d", f.UserID, f.Order, f.Limit, open.Start.UnixMicro())
	if !f.From.IsZero() {
		fmt.Fprintf(&b, ";from=%d", f.From.UnixMicro())
	}
	if !f.To.IsZero() {
		fmt.Fprintf(&b, ";to=%d", f.To.UnixMicro())
	}
	if f.After != nil {
		b.WriteString(";after=" + f.After.Encode())
	}
	return cacheKey{prefix: "counts:" + view, suffix: hashKey([]byte(b.String()))}
}
