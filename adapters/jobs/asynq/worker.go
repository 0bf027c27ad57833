package asynqjobs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// Defaults for the zero fields of WorkerConfig.
const (
	DefaultConcurrency     = 4
	DefaultShutdownTimeout = 30 * time.Second
	DefaultRetryBase       = 10 * time.Second
	DefaultRetryMax        = 10 * time.Minute
)

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	// Redis is where the queue lives (see Config.Redis).
	Redis *redis.UniversalOptions
	// Concurrency is how many windows are computed at once.
	// 0: DefaultConcurrency.
	Concurrency int
	// ShutdownTimeout is how long the windows being computed when Run's
	// context ends may take to finish; after it, they are abandoned (the
	// computation is one transaction: nothing half-done is stored) and
	// their tasks go back to the queue. 0: DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// RetryBase and RetryMax shape the backoff before a failed task is
	// retried: RetryBase doubled at each retry, up to RetryMax, plus up to
	// a fifth more at random. 0: DefaultRetryBase, DefaultRetryMax.
	RetryBase, RetryMax time.Duration
	// PollInterval is how often scheduled and retried tasks are checked
	// for being due, and an empty queue for new tasks (asynq's
	// DelayedTaskCheckInterval and TaskCheckInterval). 0: asynq's defaults
	// (5s and 1s).
	PollInterval time.Duration
	Logger       *slog.Logger // nil: discard
	// TracerProvider makes a consumer span for each computation, a child
	// of the span that enqueued the task. nil: no spans (the computation
	// still runs within the enqueuer's trace context, when the task has
	// one).
	TracerProvider trace.TracerProvider
	// Propagator reads the trace context from the tasks' headers; it must
	// match the enqueuers'. nil: otel.GetTextMapPropagator().
	Propagator propagation.TextMapPropagator
	// Webhooks, when not nil, delivers webhooks: the worker also takes the
	// webhook:deliver tasks of queue QueueWebhooks.
	Webhooks ports.WebhookJob
}

// Worker processes the counting tasks: each count:window task computes
// its window with CountJob.Compute.
type Worker struct {
	cfg    WorkerConfig
	log    *slog.Logger
	job    ports.CountJob
	hooks  ports.WebhookJob // nil: no webhook deliveries
	rdb    redis.UniversalClient
	srv    *asynq.Server
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// NewWorker returns a worker computing windows with job; nothing runs
// until Run.
func NewWorker(cfg WorkerConfig, job ports.CountJob) (*Worker, error) {
	if cfg.Redis == nil {
		return nil, errors.New("asynqjobs: no Redis options")
	}
	cfg.Concurrency = cmp.Or(cfg.Concurrency, DefaultConcurrency)
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, DefaultShutdownTimeout)
	cfg.RetryBase = cmp.Or(cfg.RetryBase, DefaultRetryBase)
	cfg.RetryMax = max(cmp.Or(cfg.RetryMax, DefaultRetryMax), cfg.RetryBase)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Worker{cfg: cfg, log: log, job: job, hooks: cfg.Webhooks, rdb: redis.NewUniversalClient(cfg.Redis)}
	queues := map[string]int{Queue: 1}
	if w.hooks != nil {
		queues[QueueWebhooks] = 1
	}
	w.tracer, w.prop = tracing(cfg.TracerProvider, cfg.Propagator)
	w.srv = asynq.NewServerFromRedisClient(w.rdb, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   queues,
		RetryDelayFunc:           w.retryDelay,
		ErrorHandler:             asynq.ErrorHandlerFunc(w.failed),
		ShutdownTimeout:          cfg.ShutdownTimeout,
		DelayedTaskCheckInterval: cfg.PollInterval,
		TaskCheckInterval:        cfg.PollInterval,
		Logger:                   asynqLogger{log},
		LogLevel:                 asynq.InfoLevel,
	})
	return w, nil
}

// Run processes tasks until ctx ends, then shuts down gracefully: no new
// task is taken, and the ones in flight have ShutdownTimeout to finish
// before they go back to the queue (a worker killed outright leaves them
// to asynq's recoverer, which retries them once their lease expires).
func (w *Worker) Run(ctx context.Context) error {
	defer w.rdb.Close()
	mux := asynq.NewServeMux()
	mux.HandleFunc(TypeWindow, w.handle)
	if w.hooks != nil {
		mux.HandleFunc(TypeDeliver, w.deliver)
	}
	if err := w.srv.Start(mux); err != nil {
		return fmt.Errorf("asynqjobs: start the worker: %w", err)
	}
	w.log.Info("counting worker running", "queue", Queue, "concurrency", w.cfg.Concurrency)
	<-ctx.Done()
	w.log.Info("counting worker stopping", "timeout", w.cfg.ShutdownTimeout)
	w.srv.Shutdown()
	w.log.Info("counting worker stopped")
	return nil
}

// handle computes the window of a count:window task, under a consumer
// span that continues the trace in the task's headers; a failure is
// recorded on it. A payload that is not a valid window is never retried
// (it goes to the archive at once).
func (w *Worker) handle(ctx context.Context, t *asynq.Task) (err error) {
	id, _ := asynq.GetTaskID(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	queue, _ := asynq.GetQueueName(ctx)
	ctx = w.prop.Extract(ctx, propagation.MapCarrier(t.Headers()))
	attrs := append(taskAttributes("process", queue, id), attribute.Int("activityd.task.retry_count", retried))
	ctx, span := w.tracer.Start(ctx, spanCompute, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
	defer func() {
		if err != nil {
			failSpan(span, err)
		}
		span.End()
	}()

	win, err := decodeWindow(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	span.SetAttributes(windowAttributes(win)...)
	began := time.Now()
	users, err := w.job.Compute(ctx, win)
	if err != nil {
		return err
	}
	span.SetAttributes(attribute.Int("activityd.window.users", users))
	w.log.InfoContext(ctx, "counted window", "window", win.String(), "users", users, "reason", "task",
		"task", id, "retried", retried, "took", time.Since(began), "lag", time.Since(win.End))
	return nil
}

// decodeWindow reads a count:window payload.
func decodeWindow(b []byte) (domain.Window, error) {
	var p payload
	if err := json.Unmarshal(b, &p); err != nil {
		return domain.Window{}, fmt.Errorf("bad count:window payload: %w", err)
	}
	w := domain.Window{Start: p.Start.UTC(), End: p.End.UTC()}
	if !w.Valid() {
		return domain.Window{}, fmt.Errorf("bad count:window payload: %s is not a window", w)
	}
	return w, nil
}

// retryDelay is the backoff before retry n+1: RetryBase·2ⁿ, at most
// RetryMax, plus up to a fifth more so that failed tasks spread out.
// A failed webhook delivery is retried when its subscription's backoff
// says (retryAt).
func (w *Worker) retryDelay(n int, err error, _ *asynq.Task) time.Duration {
	if r, ok := errors.AsType[*retryAt](err); ok {
		return max(time.Until(r.at), 0)
	}
	d := w.cfg.RetryMax
	if n < 32 {
		d = min(w.cfg.RetryBase<<n, w.cfg.RetryMax)
		if d <= 0 { // overflow
			d = w.cfg.RetryMax
		}
	}
	return d + rand.N(d/5+1)
}

// failed logs a failed task: retried later, or dead (archived).
func (w *Worker) failed(ctx context.Context, t *asynq.Task, err error) {
	id, _ := asynq.GetTaskID(ctx)
	if _, ok := errors.AsType[*retryAt](err); ok {
		// A receiver's failure: the subscription's delivery log has it.
		w.log.DebugContext(ctx, "webhook delivery failed; retried", "task", id, "err", err)
		return
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	if errors.Is(err, asynq.SkipRetry) || retried >= maxRetry {
		w.log.ErrorContext(ctx, "counting task failed for good; archived (see the asynq CLI or asynqmon, queue "+Queue+")",
			"task", id, "type", t.Type(), "retried", retried, "err", err)
		return
	}
	w.log.WarnContext(ctx, "counting task failed; it will be retried",
		"task", id, "type", t.Type(), "retried", retried, "max_retry", maxRetry, "err", err)
}

// asynqLogger sends asynq's own log lines to slog.
type asynqLogger struct{ log *slog.Logger }

func (l asynqLogger) Debug(args ...any) { l.log.Debug("asynq: " + fmt.Sprint(args...)) }
func (l asynqLogger) Info(args ...any)  { l.log.Info("asynq: " + fmt.Sprint(args...)) }
func (l asynqLogger) Warn(args ...any)  { l.log.Warn("asynq: " + fmt.Sprint(args...)) }
func (l asynqLogger) Error(args ...any) { l.log.Error("asynq: " + fmt.Sprint(args...)) }

// Fatal is what asynq calls when it cannot go on; as asynq's own logger
// does, it exits.
func (l asynqLogger) Fatal(args ...any) {
	l.log.Error("asynq: " + fmt.Sprint(args...))
	os.Exit(1)
}
