// Package inprocess runs the counting job inside the serving process
// (ports.Jobs without a queue): a goroutine of `activityd serve` wakes at
// each tick of the schedule and computes the windows then due, oldest
// first, and computes whatever an admin enqueued (POST
// /v1/activity-counts/runs) as soon as it is handed over.
//
// Several replicas each running it are harmless: they compute the same
// windows, and a window's computation is idempotent and serialised by the
// store, so the rows are the same as with one. It is only wasted work;
// with REDIS_URL the asynq scheduler and workers (adapters/jobs/asynq)
// take over instead: one task per window, deterministic task ids.
package inprocess

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// Defaults for the zero fields of Config.
const (
	DefaultRetryEvery = time.Minute
	DefaultStopGrace  = 30 * time.Second
)

// Config configures a Runner.
type Config struct {
	// Schedule is the counting schedule; the runner wakes at each tick.
	// nil: it never wakes on its own, and only computes what is enqueued.
	Schedule domain.Schedule
	// Settle delays each wake-up after a tick; it should be the app's
	// CountsConfig.Settle, so that the window which just closed is due.
	Settle time.Duration
	// RetryEvery is how soon a run that failed (storage unavailable) is
	// tried again, when the next tick is later. 0: DefaultRetryEvery.
	RetryEvery time.Duration
	// StopGrace is how long the window being computed when Run's context
	// ends may take to finish; after it, the computation is cancelled
	// (rolled back: nothing half-done is stored). 0: DefaultStopGrace.
	StopGrace time.Duration
	Logger    *slog.Logger // nil: discard
}

// Runner is the in-process ports.Jobs. Its methods are safe for
// concurrent use; Run must be called once.
type Runner struct {
	cfg     Config
	log     *slog.Logger
	mu      sync.Mutex
	pending map[int64]domain.Window // enqueued, by start (Unix µs)
	wake    chan struct{}           // capacity 1: "pending is not empty"
}

var _ ports.Jobs = (*Runner)(nil)

// New returns a runner; nothing runs until Run.
func New(cfg Config) *Runner {
	cfg.RetryEvery = cmp.Or(cfg.RetryEvery, DefaultRetryEvery)
	cfg.StopGrace = cmp.Or(cfg.StopGrace, DefaultStopGrace)
	cfg.Settle = max(cfg.Settle, 0)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: cfg, log: log, pending: map[int64]domain.Window{}, wake: make(chan struct{}, 1)}
}

// Enqueue implements ports.Jobs: the windows are computed by Run as soon
// as it is free, oldest first. A window already waiting (same start) is
// not queued twice. Windows enqueued while Run is not running wait for it.
func (r *Runner) Enqueue(ctx context.Context, ws []domain.Window) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	for _, w := range ws {
		r.pending[w.Start.UnixMicro()] = w
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil
}

// take removes and returns the pending windows, oldest first.
func (r *Runner) take() []domain.Window {
	r.mu.Lock()
	defer r.mu.Unlock()
	ws := make([]domain.Window, 0, len(r.pending))
	for k, w := range r.pending {
		ws = append(ws, w)
		delete(r.pending, k)
	}
	slices.SortFunc(ws, func(a, b domain.Window) int { return a.Start.Compare(b.Start) })
	return ws
}

// Run implements ports.Jobs: it catches up at once, then runs at every
// tick (plus Settle) and whenever windows are enqueued, until ctx ends.
// It always returns nil: failures are logged and retried (after
// RetryEvery, or at the next tick if sooner).
func (r *Runner) Run(ctx context.Context, job ports.CountJob) error {
	// Computations outlive ctx by at most StopGrace: a window being
	// computed at shutdown is finished rather than thrown away.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(r.cfg.StopGrace, cancelWork)
		context.AfterFunc(work, func() { t.Stop() })
	})
	defer stop()

	r.log.Info("counting job running in process", "settle", r.cfg.Settle)
	ok := r.runDue(ctx, work, job)
	for {
		wait := time.Duration(-1) // none: only an Enqueue or ctx wakes the loop
		if next := r.nextWake(time.Now()); !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		if !ok && (wait < 0 || wait > r.cfg.RetryEvery) {
			wait = r.cfg.RetryEvery
		}
		var timer *time.Timer
		var fire <-chan time.Time
		if wait >= 0 {
			timer = time.NewTimer(wait)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			r.log.Info("counting job stopped")
			return nil
		case <-fire:
			ok = r.runDue(ctx, work, job)
		case <-r.wake:
			r.compute(ctx, work, job, r.take(), "enqueued")
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// nextWake is when the window that closes next becomes due: the first
// tick after now - Settle, plus Settle (zero when the schedule has none).
func (r *Runner) nextWake(now time.Time) time.Time {
	if r.cfg.Schedule == nil {
		return time.Time{}
	}
	t := r.cfg.Schedule.Next(now.Add(-r.cfg.Settle).UTC())
	if t.IsZero() {
		return t
	}
	return t.Add(r.cfg.Settle)
}

// runDue plans the windows due now and computes them; it reports whether
// everything went well.
func (r *Runner) runDue(ctx, work context.Context, job ports.CountJob) bool {
	due, skipped, err := job.Plan(work, time.Now())
	if err != nil {
		r.log.Warn("counting job: planning failed; retrying", "err", err, "retry_in", r.cfg.RetryEvery)
		return false
	}
	if skipped > 0 {
		r.log.Warn("counting job: more windows were missed than MAX_CATCHUP allows; the oldest are not counted",
			"skipped", skipped, "caught_up", len(due))
	}
	return r.compute(ctx, work, job, due, "schedule")
}

// compute computes ws in order, stopping early when ctx ends or a window
// fails (the later ones stay due: the watermark has not passed them).
func (r *Runner) compute(ctx, work context.Context, job ports.CountJob, ws []domain.Window, reason string) bool {
	for _, w := range ws {
		if ctx.Err() != nil {
			return true
		}
		began := time.Now()
		users, err := job.Compute(work, w)
		if err != nil {
			r.log.Warn("counting job: window failed", "window", w.String(), "reason", reason, "err", err)
			return false
		}
		r.log.Info("counted window", "window", w.String(), "users", users, "reason", reason,
			"took", time.Since(began), "lag", time.Since(w.End))
	}
	return true
}
