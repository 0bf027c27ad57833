package app

import (
	"context"
	"fmt"
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
	cache      *readCache // nil: reads are not cached
	observer   Observer   // never nil
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
	return &Counts{
		store:      store,
		clock:      clock,
		schedule:   cfg.Schedule,
		maxCatchup: cfg.MaxCatchup,
		settle:     max(cfg.Settle, 0),
		jobs:       cfg.Jobs,
		cache:      newReadCache(cfg.Cache),
		observer:   cfg.Observer,
	}
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
// how many older ones the catch-up bound skipped.
type Run struct {
	Windows []domain.Window
	Skipped int
}

// Trigger is an admin's "compute now": the windows due now are handed to
// the jobs (or, without jobs, computed before returning). When none is
// due, the last computed window is computed again (idempotent; it picks
// up anything that reached storage after it was counted).
func (c *Counts) Trigger(ctx context.Context, p domain.Principal) (Run, error) {
	if !p.IsAdmin() {
		return Run{}, fmt.Errorf("%w: only an admin may run the counting job", domain.ErrForbidden)
	}
	due, skipped, err := c.Plan(ctx, c.clock.Now())
	if err != nil {
		return Run{}, err
	}
	if len(due) == 0 {
		wm, err := c.store.Watermark(ctx)
		if err != nil {
			return Run{}, fmt.Errorf("read the counting watermark: %w", err)
		}
		if wm.Valid() {
			due = []domain.Window{wm}
		}
	}
	run := Run{Windows: due, Skipped: skipped}
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

// List returns one page of the computed counts q selects, as p may see
// them, with the same ownership rules as event lists: a non-admin
// principal that names no user reads its own counts, and naming another
// user is domain.ErrForbidden. view is as for Events.List; cached pages
// are keyed by the counts generation, which every computed window bumps,
// and by the normalised filter, user included.
func (c *Counts) List(ctx context.Context, p domain.Principal, q domain.CountQuery, view string) (Listing[domain.CountPage], error) {
	if err := need(p, domain.ScopeRead); err != nil {
		return Listing[domain.CountPage]{}, err
	}
	f, err := domain.ParseCountQuery(q)
	if err != nil {
		return Listing[domain.CountPage]{}, err
	}
	if f.UserID, err = readable(p, f.UserID); err != nil {
		return Listing[domain.CountPage]{}, err
	}
	load := func(ctx context.Context) (domain.CountPage, error) {
		page, err := c.store.ListCounts(ctx, f)
		if err != nil {
			return domain.CountPage{}, fmt.Errorf("list activity counts: %w", err)
		}
		return page, nil
	}
	return cachedRead(ctx, c.cache, view, genCounts, func() cacheKey { return countKey(view, f) }, load)
}

// countKey is the cache key of a count filter rendered by a view.
func countKey(view string, f domain.CountFilter) cacheKey {
	var b strings.Builder
	fmt.Fprintf(&b, "u=%d;o=%s;l=%d", f.UserID, f.Order, f.Limit)
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
