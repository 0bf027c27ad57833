package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// CacheHooks are counters for app.CacheConfig's Observe and OnError:
// activityd_cache_requests_total{view,result} and
// activityd_cache_errors_total{op}.
type CacheHooks struct {
	requests metric.Int64Counter
	errors   metric.Int64Counter
}

// NewCacheHooks makes the cache counters from mp.
func NewCacheHooks(mp metric.MeterProvider) (*CacheHooks, error) {
	m := mp.Meter("github.com/activityd/activityd/app")
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
