// Package asynqjobs runs the counting job over asynq, a Redis-backed task
// queue (ports.Jobs with a queue), split between two kinds of process:
//
//   - the scheduler (Jobs.Run, `activityd scheduler`) wakes at each tick
//     of the schedule, plans the windows then due (CountJob.Plan, over the
//     stored watermark) and enqueues one "count:window" task per window, in
//     queue "counts", with a task id derived from the window alone;
//   - workers (Worker, `activityd worker`) take the tasks and compute the
//     windows (CountJob.Compute), retrying failures with exponential
//     backoff; a task that fails every retry is archived, where asynq's
//     tooling (the asynq CLI, asynqmon) shows it and can run it again.
//
// The API replicas (`activityd serve`) only Enqueue: an admin's "compute
// now" becomes tasks like the scheduler's.
//
// # Why several schedulers never double-count
//
// Two schedulers that plan the same window enqueue the same task id, and
// asynq refuses the second (ErrTaskIDConflict) while the first is
// pending, running, retrying, archived or completed within its retention
// (Config.Retention): the window is computed once. The watermark only
// advances when a worker computes a window, so a tick that comes before
// the worker did re-plans the same windows, which are again refused. And
// whatever slips through (a second enqueue after the retention, a task
// requeued after a worker died mid-way) is harmless: computing a window
// replaces its rows in one transaction, so counts are exact, never doubled.
//
// # Traces
//
// Given a TracerProvider, the scheduler's runs, the enqueues and the
// workers' computations are spans of one trace per window request, the
// trace context travelling in the tasks' headers: see tracing.go.
//
// # Why not asynq.Scheduler
//
// asynq's own scheduler enqueues a fixed task at each cron tick. The
// windows due at a tick depend on the watermark, which only the store
// knows, and the window that has just closed becomes due only Settle
// after the tick (writes in flight at the boundary must be in). So the
// scheduler here is a small loop over the same schedule (robfig/cron's,
// in UTC, as COUNT_SCHEDULE is parsed) that wakes Settle after each tick,
// as the in-process runner does, and enqueues the planned windows itself.
package asynqjobs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// Names shared by the scheduler, the API replicas and the workers.
const (
	// Queue is the asynq queue the counting tasks go to.
	Queue = "counts"
	// TypeWindow is the type of the task that computes one window.
	TypeWindow = "count:window"
)

// Defaults for the zero fields of Config.
const (
	DefaultMaxRetry   = 10
	DefaultRetention  = 24 * time.Hour
	DefaultRetryEvery = time.Minute
)

// Config configures Jobs.
type Config struct {
	// Redis is where the queue lives: the options rediscache.ParseURL
	// makes of REDIS_URL (one server, Sentinel or Cluster).
	Redis *redis.UniversalOptions
	// Schedule is the counting schedule; Run wakes at each tick. nil: Run
	// only plans once at start.
	Schedule domain.Schedule
	// Settle delays each wake-up after a tick; it should be the app's
	// CountsConfig.Settle, so that the window which just closed is due.
	Settle time.Duration
	// RetryEvery is how soon a scheduler run that failed (storage or
	// Redis unavailable) is tried again, when the next tick is later.
	// 0: DefaultRetryEvery.
	RetryEvery time.Duration
	// MaxRetry is how many times a failed task is retried before it is
	// archived (dead). 0: DefaultMaxRetry.
	MaxRetry int
	// Retention is how long a completed task (and so its id) is kept: a
	// window planned again in that time, by another scheduler that read
	// the watermark before the worker moved it, is not enqueued twice.
	// 0: DefaultRetention.
	Retention time.Duration
	Logger    *slog.Logger // nil: discard
	// TracerProvider makes the scheduler's and the enqueues' spans.
	// nil: no spans (a caller's trace context still goes into the tasks).
	TracerProvider trace.TracerProvider
	// Propagator writes the trace context into the tasks' headers; it
	// must match the workers'. nil: otel.GetTextMapPropagator().
	Propagator propagation.TextMapPropagator
}

// Jobs is the asynq ports.Jobs: Run is the scheduler, Enqueue is how the
// API hands windows over. Its methods are safe for concurrent use.
type Jobs struct {
	cfg    Config
	log    *slog.Logger
	rdb    redis.UniversalClient
	cli    *asynq.Client
	insp   *asynq.Inspector
	clock  func() time.Time
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

var _ ports.Jobs = (*Jobs)(nil)

// New connects to Redis (lazily: nothing is dialled until the first
// enqueue) and returns the jobs; Close releases the connections.
func New(cfg Config) (*Jobs, error) {
	if cfg.Redis == nil {
		return nil, errors.New("asynqjobs: no Redis options")
	}
	cfg.RetryEvery = cmp.Or(cfg.RetryEvery, DefaultRetryEvery)
	cfg.MaxRetry = cmp.Or(cfg.MaxRetry, DefaultMaxRetry)
	cfg.Retention = cmp.Or(cfg.Retention, DefaultRetention)
	cfg.Settle = max(cfg.Settle, 0)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rdb := redis.NewUniversalClient(cfg.Redis)
	tracer, prop := tracing(cfg.TracerProvider, cfg.Propagator)
	return &Jobs{
		cfg:    cfg,
		log:    log,
		rdb:    rdb,
		cli:    asynq.NewClientFromRedisClient(rdb),
		insp:   asynq.NewInspectorFromRedisClient(rdb),
		clock:  time.Now,
		tracer: tracer,
		prop:   prop,
	}, nil
}

// Close closes the connections to Redis.
func (j *Jobs) Close() error {
	return errors.Join(j.cli.Close(), j.insp.Close(), j.rdb.Close())
}

// TaskID is the id of the task that computes w: the window as an ISO 8601
// interval, so that every scheduler and replica derives the same id for
// the same window (and a window after a schedule change, with another
// end, gets another id).
func TaskID(w domain.Window) string {
	return "count-window:" + domain.FormatTime(domain.Normalize(w.Start)) + "/" + domain.FormatTime(domain.Normalize(w.End))
}

// payload is a count:window task's payload. Decoding ignores unknown
// fields, so a later version may add some while older workers still run;
// request-scoped context (the trace parent) belongs in the task's headers,
// which newTask sets, so that the payload depends on the window alone.
type payload struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// newTask returns the task that computes w, with the trace context of
// ctx (the producer span's) in its headers; none when ctx has none.
func (j *Jobs) newTask(ctx context.Context, w domain.Window) (*asynq.Task, error) {
	b, err := json.Marshal(payload{Start: domain.Normalize(w.Start), End: domain.Normalize(w.End)})
	if err != nil {
		return nil, err
	}
	headers := propagation.MapCarrier{}
	j.prop.Inject(ctx, headers)
	return asynq.NewTaskWithHeaders(TypeWindow, b, headers,
		asynq.TaskID(TaskID(w)),
		asynq.Queue(Queue),
		asynq.MaxRetry(j.cfg.MaxRetry),
		asynq.Retention(j.cfg.Retention),
	), nil
}

// startEnqueue starts the producer span of w's task, for reason
// ("schedule" or "request"); newTask carries its context to the worker.
func (j *Jobs) startEnqueue(ctx context.Context, w domain.Window, reason string) (context.Context, trace.Span) {
	attrs := append(taskAttributes("send", Queue, TaskID(w)), windowAttributes(w)...)
	attrs = append(attrs, attribute.String("activityd.enqueue.reason", reason))
	return j.tracer.Start(ctx, spanEnqueue, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
}

// endEnqueue ends a producer span with the enqueue's outcome or error.
func endEnqueue(span trace.Span, outcome string, err error) {
	if err != nil {
		failSpan(span, err)
	} else {
		span.SetAttributes(attribute.String("activityd.task.outcome", outcome))
	}
	span.End()
}

// enqueue enqueues the task of w; queued reports false when a task of
// that id already exists (in any state), which is not an error.
func (j *Jobs) enqueue(ctx context.Context, w domain.Window) (queued bool, err error) {
	task, err := j.newTask(ctx, w)
	if err != nil {
		return false, err
	}
	_, err = j.cli.EnqueueContext(ctx, task)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, asynq.ErrTaskIDConflict), errors.Is(err, asynq.ErrDuplicateTask):
		return false, nil
	default:
		return false, fmt.Errorf("asynqjobs: enqueue window %s: %w", w, err)
	}
}

// Enqueue implements ports.Jobs: each window becomes a task, oldest
// first. A window whose task is waiting or running is not queued twice;
// one whose task has completed (still retained) or is dead (archived) is
// queued again, since an admin asked for it to be computed now.
//
// Each window gets a producer span, a child of ctx's span.
func (j *Jobs) Enqueue(ctx context.Context, ws []domain.Window) error {
	for _, w := range ws {
		if err := j.enqueueRequested(ctx, w); err != nil {
			return err
		}
	}
	return nil
}

// enqueueRequested is Enqueue for one window, under its producer span.
func (j *Jobs) enqueueRequested(ctx context.Context, w domain.Window) (err error) {
	ctx, span := j.startEnqueue(ctx, w, "request")
	outcome := outcomeExists
	defer func() { endEnqueue(span, outcome, err) }()
	queued, err := j.enqueue(ctx, w)
	if err != nil {
		return err
	}
	if queued {
		outcome = outcomeEnqueued
		j.log.InfoContext(ctx, "counting window enqueued", "window", w.String(), "task", TaskID(w), "reason", "enqueued")
		return nil
	}
	info, err := j.insp.GetTaskInfo(Queue, TaskID(w))
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound):
		// Expired or deleted in between: enqueue again below.
	case err != nil:
		return fmt.Errorf("asynqjobs: inspect the task of window %s: %w", w, err)
	case info.State == asynq.TaskStateCompleted || info.State == asynq.TaskStateArchived:
		if err := j.insp.DeleteTask(Queue, info.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return fmt.Errorf("asynqjobs: replace the %s task of window %s: %w", info.State, w, err)
		}
	default: // pending, scheduled, retry or active: it will be computed
		return nil
	}
	if queued, err = j.enqueue(ctx, w); err != nil {
		return err
	}
	if queued {
		outcome = outcomeReplaced
		j.log.InfoContext(ctx, "counting window enqueued again", "window", w.String(), "task", TaskID(w), "reason", "enqueued")
	}
	return nil
}

// Run implements ports.Jobs as the scheduler: it plans and enqueues the
// due windows at once (catching up on what was missed while no scheduler
// ran), then Settle after every tick of the schedule, until ctx ends. It
// does not compute anything: workers do. It always returns nil: failures
// are logged and retried after RetryEvery (or at the next tick if sooner).
func (j *Jobs) Run(ctx context.Context, job ports.CountJob) error {
	j.log.Info("counting scheduler running", "queue", Queue, "settle", j.cfg.Settle)
	ok := j.runDue(ctx, job)
	for {
		wait := time.Duration(-1) // none: only ctx wakes the loop
		if next := j.nextWake(j.clock()); !next.IsZero() {
			wait = max(next.Sub(j.clock()), 0)
		}
		if !ok && (wait < 0 || wait > j.cfg.RetryEvery) {
			wait = j.cfg.RetryEvery
		}
		var fire <-chan time.Time
		var timer *time.Timer
		if wait >= 0 {
			timer = time.NewTimer(wait)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			j.log.Info("counting scheduler stopped")
			return nil
		case <-fire:
			ok = j.runDue(ctx, job)
		}
	}
}

// nextWake is when the window that closes next becomes due: the first
// tick after now - Settle, plus Settle (zero when the schedule has none).
func (j *Jobs) nextWake(now time.Time) time.Time {
	if j.cfg.Schedule == nil {
		return time.Time{}
	}
	t := j.cfg.Schedule.Next(now.Add(-j.cfg.Settle).UTC())
	if t.IsZero() {
		return t
	}
	return t.Add(j.cfg.Settle)
}

// runDue plans the windows due now and enqueues them, oldest first; it
// reports whether everything went well. It is one span (a trace of its
// own), the parent of the planning's spans and of the producer spans.
func (j *Jobs) runDue(ctx context.Context, job ports.CountJob) bool {
	ctx, span := j.tracer.Start(ctx, spanSchedule)
	defer span.End()
	due, skipped, err := job.Plan(ctx, j.clock())
	if err != nil {
		if ctx.Err() == nil {
			failSpan(span, err)
			j.log.WarnContext(ctx, "counting scheduler: planning failed; retrying", "err", err, "retry_in", j.cfg.RetryEvery)
		}
		return ctx.Err() != nil
	}
	span.SetAttributes(attribute.Int("activityd.windows.due", len(due)), attribute.Int("activityd.windows.skipped", skipped))
	if skipped > 0 {
		j.log.WarnContext(ctx, "counting scheduler: more windows were missed than MAX_CATCHUP allows; the oldest are not counted",
			"skipped", skipped, "caught_up", len(due))
	}
	for _, w := range due {
		queued, err := j.enqueueScheduled(ctx, w)
		if err != nil {
			if ctx.Err() == nil {
				failSpan(span, err)
				j.log.WarnContext(ctx, "counting scheduler: enqueue failed; retrying", "window", w.String(), "err", err,
					"retry_in", j.cfg.RetryEvery)
			}
			return ctx.Err() != nil
		}
		if queued {
			j.log.InfoContext(ctx, "counting window enqueued", "window", w.String(), "task", TaskID(w), "reason", "schedule")
		} else {
			j.log.DebugContext(ctx, "counting window already enqueued", "window", w.String(), "task", TaskID(w))
		}
	}
	return true
}

// enqueueScheduled is enqueue under a producer span.
func (j *Jobs) enqueueScheduled(ctx context.Context, w domain.Window) (bool, error) {
	ctx, span := j.startEnqueue(ctx, w, "schedule")
	queued, err := j.enqueue(ctx, w)
	outcome := outcomeExists
	if queued {
		outcome = outcomeEnqueued
	}
	endEnqueue(span, outcome, err)
	return queued, err
}
