package telemetry

import (
	"context"
	"time"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// appScope is the instrumentation scope of the use cases' metrics.
const appScope = "github.com/activityd/activityd/app"

// CacheHooks are counters for app.CacheConfig's Observe and OnError:
// activityd_cache_requests_total{view,result} and
// activityd_cache_errors_total{op}.
type CacheHooks struct {
	requests metric.Int64Counter
	errors   metric.Int64Counter
}

// NewCacheHooks makes the cache counters from mp.
func NewCacheHooks(mp metric.MeterProvider) (*CacheHooks, error) {
	m := mp.Meter(appScope)
	req, err := m.Int64Counter("activityd.cache.requests",
		metric.WithDescription("List reads by how the cache served them (result HIT, MISS or BYPASS)."))
	if err != nil {
		return nil, err
	}
	errs, err := m.Int64Counter("activityd.cache.errors",
		metric.WithDescription("Cache operations that failed (the read went to storage)."))
	if err != nil {
		return nil, err
	}
	return &CacheHooks{requests: req, errors: errs}, nil
}

// Observe counts one read; its signature is app.CacheConfig.Observe's
// with the result as a string (app.CacheResult is a string type).
func (h *CacheHooks) Observe(view, result string) {
	h.requests.Add(context.Background(), 1, metric.WithAttributes(
		attribute.String("view", view), attribute.String("result", result)))
}

// OnError counts one failed cache operation.
func (h *CacheHooks) OnError(op string, _ error) {
	h.errors.Add(context.Background(), 1, metric.WithAttributes(attribute.String("op", op)))
}

// Observer is the app.Observer that turns what the use cases did into
// metrics:
//
//	activityd_events_recorded_total{action}
//	activityd_event_transitions_total{from,to,result}
//	activityd_count_runs_total{result}             ok | error
//	activityd_count_run_duration_seconds           histogram
//	activityd_count_windows_computed_total
//
// Labels are bounded: statuses and results are closed sets, and an
// action is its own label only when the vocabulary names it (with
// ACTIONS=* any action outside the default vocabulary is "other").
type Observer struct {
	vocab       domain.Vocabulary
	recorded    metric.Int64Counter
	transitions metric.Int64Counter
	runs        metric.Int64Counter
	runDuration metric.Float64Histogram
	windows     metric.Int64Counter
}

var _ app.Observer = (*Observer)(nil)

// runBuckets are the window-computation duration bounds, in seconds: a
// window takes milliseconds on a small store and can take minutes on a
// large one.
var runBuckets = []float64{0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// NewObserver makes the use-case instruments from mp; vocab is the
// vocabulary in force (it bounds the action label).
func NewObserver(mp metric.MeterProvider, vocab domain.Vocabulary) (*Observer, error) {
	m := mp.Meter(appScope)
	o := &Observer{vocab: vocab}
	var err error
	if o.recorded, err = m.Int64Counter("activityd.events.recorded",
		metric.WithDescription("Events newly stored, by action (idempotent retries are not counted).")); err != nil {
		return nil, err
	}
	if o.transitions, err = m.Int64Counter("activityd.event.transitions",
		metric.WithDescription("Status transition attempts on existing events, by from, to and result (ok, invalid, conflict, error).")); err != nil {
		return nil, err
	}
	if o.runs, err = m.Int64Counter("activityd.count.runs",
		metric.WithDescription("Counting-window computations, by result (ok, error).")); err != nil {
		return nil, err
	}
	if o.runDuration, err = m.Float64Histogram("activityd.count.run.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to compute one counting window."),
		metric.WithExplicitBucketBoundaries(runBuckets...)); err != nil {
		return nil, err
	}
	if o.windows, err = m.Int64Counter("activityd.count.windows_computed",
		metric.WithDescription("Counting windows computed successfully.")); err != nil {
		return nil, err
	}
	return o, nil
}

// Recorded counts one stored event.
func (o *Observer) Recorded(ctx context.Context, a domain.Action) {
	o.recorded.Add(ctx, 1, metric.WithAttributes(attribute.String("action", o.actionLabel(a))))
}

// actionLabel is a's label value: a when the vocabulary is closed (every
// stored action is in it), else a if it is a default action, else "other".
func (o *Observer) actionLabel(a domain.Action) string {
	if !o.vocab.Any() {
		return string(a)
	}
	for _, d := range domain.DefaultActions {
		if a == d {
			return string(a)
		}
	}
	return "other"
}

// Transitioned counts one transition attempt.
func (o *Observer) Transitioned(ctx context.Context, from, to domain.Status, r app.TransitionResult) {
	o.transitions.Add(ctx, 1, metric.WithAttributes(
		attribute.String("from", string(from)), attribute.String("to", string(to)), attribute.String("result", string(r))))
}

// Computed counts one window computation and records how long it took.
func (o *Observer) Computed(ctx context.Context, _ domain.Window, _ int, took time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	} else {
		o.windows.Add(ctx, 1)
	}
	attrs := metric.WithAttributes(attribute.String("result", result))
	o.runs.Add(ctx, 1, attrs)
	o.runDuration.Record(ctx, took.Seconds(), attrs)
}

// ObserveCountLag exports activityd_count_lag_seconds, read from lag at
// each collection (a scrape): how far counting is behind its schedule.
// A lag that cannot be read (storage down) is left out of that scrape.
// The returned function unregisters it.
func ObserveCountLag(mp metric.MeterProvider, lag func(context.Context, time.Time) (time.Duration, error)) (func() error, error) {
	m := mp.Meter(appScope)
	g, err := m.Float64ObservableGauge("activityd.count.lag", metric.WithUnit("s"),
		metric.WithDescription("Seconds since the oldest counting window still uncounted became due; 0 when caught up."))
	if err != nil {
		return nil, err
	}
	reg, err := m.RegisterCallback(func(ctx context.Context, obs metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		d, err := lag(ctx, time.Now())
		if err != nil {
			return nil // no sample rather than a wrong one
		}
		obs.ObserveFloat64(g, d.Seconds())
		return nil
	}, g)
	if err != nil {
		return nil, err
	}
	return reg.Unregister, nil
}

// ObserveCheckpointAge reports, at each collection, the seconds since the
// newest checkpoint was signed (latest: its time, false when there is
// none): a gauge that only grows when checkpoints stop being made.
func ObserveCheckpointAge(mp metric.MeterProvider, latest func(context.Context) (time.Time, bool, error)) (func() error, error) {
	m := mp.Meter(appScope)
	g, err := m.Float64ObservableGauge("activityd.checkpoint.age", metric.WithUnit("s"),
		metric.WithDescription("Seconds since the newest checkpoint of the hash chains was signed; absent before the first."))
	if err != nil {
		return nil, err
	}
	reg, err := m.RegisterCallback(func(ctx context.Context, obs metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		at, ok, err := latest(ctx)
		if err != nil || !ok {
			return nil // no sample rather than a wrong one
		}
		obs.ObserveFloat64(g, max(time.Since(at).Seconds(), 0))
		return nil
	}, g)
	if err != nil {
		return nil, err
	}
	return reg.Unregister, nil
}
