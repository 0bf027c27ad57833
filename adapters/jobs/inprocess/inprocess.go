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

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"

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
	// TracerProvider makes a span for each scheduled run ("count-window
	// schedule") and each window computed ("count-window compute", under
	// the run, or under the span of the request that enqueued it). nil:
	// no spans.
	TracerProvider trace.TracerProvider
}

// Runner is the in-process ports.Jobs. Its methods are safe for
// concurrent use; Run must be called once.
type Runner struct {
	cfg     Config
	log     *slog.Logger
	tracer  trace.Tracer
	mu      sync.Mutex
	pending map[int64]enqueued // by window start (Unix µs)
	wake    chan struct{}      // capacity 1: "pending is not empty"
}

// enqueued is a window waiting to be computed, with the span of whoever
// enqueued it (invalid when none), the parent of its computation's span.
type enqueued struct {
	w  domain.Window
	by trace.SpanContext
}

// Span names, the same as the asynq runner's.
const (
	spanSchedule = "count-window schedule"
	spanCompute  = "count-window compute"
)

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
	tp := cfg.TracerProvider
	if tp == nil {
		tp = nooptrace.NewTracerProvider()
	}
	return &Runner{cfg: cfg, log: log, tracer: tp.Tracer("github.com/activityd/activityd/adapters/jobs/inprocess"),
		pending: map[int64]enqueued{}, wake: make(chan struct{}, 1)}
}

// Enqueue implements ports.Jobs: the windows are computed by Run as soon
// as it is free, oldest first. A window already waiting (same start) is
// not queued twice. Windows enqueued while Run is not running wait for it.
func (r *Runner) Enqueue(ctx context.Context, ws []domain.Window) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	by := trace.SpanContextFromContext(ctx)
	r.mu.Lock()
	for _, w := range ws {
		r.pending[w.Start.UnixMicro()] = enqueued{w: w, by: by}
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil
}

// take removes and returns the pending windows, oldest first.
func (r *Runner) take() []enqueued {
	r.mu.Lock()
	defer r.mu.Unlock()
	ws := make([]enqueued, 0, len(r.pending))
	for k, e := range r.pending {
		ws = append(ws, e)
		delete(r.pending, k)
	}
	slices.SortFunc(ws, func(a, b enqueued) int { return a.w.Start.Compare(b.w.Start) })
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
	work, span := r.tracer.Start(work, spanSchedule, trace.WithNewRoot())
	defer span.End()
	due, skipped, err := job.Plan(work, time.Now())
	if err != nil {
		failSpan(span, err)
		r.log.WarnContext(work, "counting job: planning failed; retrying", "err", err, "retry_in", r.cfg.RetryEvery)
		return false
	}
	span.SetAttributes(attribute.Int("activityd.windows.due", len(due)), attribute.Int("activityd.windows.skipped", skipped))
	if skipped > 0 {
		r.log.WarnContext(work, "counting job: more windows were missed than MAX_CATCHUP allows; the oldest are not counted",
			"skipped", skipped, "caught_up", len(due))
	}
	ws := make([]enqueued, len(due))
	for i, w := range due {
		ws[i] = enqueued{w: w, by: span.SpanContext()}
	}
	ok := r.compute(ctx, work, job, ws, "schedule")
	if !ok {
		span.SetStatus(codes.Error, "a window failed")
	}
	return ok
}

// compute computes ws in order, stopping early when ctx ends or a window
// fails (the later ones stay due: the watermark has not passed them).
func (r *Runner) compute(ctx, work context.Context, job ports.CountJob, ws []enqueued, reason string) bool {
	for _, e := range ws {
		if ctx.Err() != nil {
			return true
		}
		if !r.computeOne(work, job, e, reason) {
			return false
		}
	}
	return true
}

// computeOne computes one window under its span, a child of the span that
// enqueued or planned it.
func (r *Runner) computeOne(work context.Context, job ports.CountJob, e enqueued, reason string) bool {
	w := e.w
	work, span := r.tracer.Start(trace.ContextWithSpanContext(work, e.by), spanCompute, trace.WithAttributes(
		attribute.String("activityd.window.start", domain.FormatTime(w.Start)),
		attribute.String("activityd.window.end", domain.FormatTime(w.End)),
		attribute.String("activityd.reason", reason)))
	defer span.End()
	began := time.Now()
	users, err := job.Compute(work, w)
	if err != nil {
		failSpan(span, err)
		r.log.WarnContext(work, "counting job: window failed", "window", w.String(), "reason", reason, "err", err)
		return false
	}
	span.SetAttributes(attribute.Int("activityd.window.users", users))
	r.log.InfoContext(work, "counted window", "window", w.String(), "users", users, "reason", reason,
		"took", time.Since(began), "lag", time.Since(w.End))
	return true
}

// failSpan records err on span and marks it failed.
func failSpan(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}
