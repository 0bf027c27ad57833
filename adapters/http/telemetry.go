package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"
)

// instrumentation is the HTTP adapter's share of telemetry: one server
// span per request and the request metrics, all labelled by route
// template (never a raw path or an id) so their cardinality is bounded.
//
// Exposed by the OpenTelemetry Prometheus exporter (which appends _total
// to counters and _seconds to the duration's unit) as
// activityd_http_requests_total, activityd_http_requests_errors_total
// (status >= 400) and activityd_http_request_duration_seconds, each by
// route, method and status; and activityd_http_anonymous_requests_total,
// by route, the requests served without a credential (anonymous.go).
type instrumentation struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	requests   metric.Int64Counter
	errors     metric.Int64Counter
	duration   metric.Float64Histogram
	anonymous  metric.Int64Counter
}

const instrumentationName = "github.com/activityd/activityd/adapters/http"

// durationBuckets are the duration histogram's bounds, in seconds.
var durationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

func newInstrumentation(tp trace.TracerProvider, mp metric.MeterProvider, prop propagation.TextMapPropagator) *instrumentation {
	if tp == nil {
		tp = nooptrace.NewTracerProvider()
	}
	if mp == nil {
		mp = noopmetric.NewMeterProvider()
	}
	if prop == nil {
		prop = otel.GetTextMapPropagator()
	}
	m := mp.Meter(instrumentationName)
	in := &instrumentation{tracer: tp.Tracer(instrumentationName), propagator: prop}
	var err error
	// A provider refuses an instrument only for an invalid name or
	// option, a programming error; it then still returns a usable no-op.
	if in.requests, err = m.Int64Counter("activityd.http.requests",
		metric.WithDescription("HTTP requests served, by route template, method and status.")); err != nil {
		otel.Handle(err)
	}
	if in.errors, err = m.Int64Counter("activityd.http.requests_errors",
		metric.WithDescription("HTTP requests answered with a status of 400 or more.")); err != nil {
		otel.Handle(err)
	}
	if in.duration, err = m.Float64Histogram("activityd.http.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to serve an HTTP request."),
		metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		otel.Handle(err)
	}
	if in.anonymous, err = m.Int64Counter("activityd.http.anonymous_requests",
		metric.WithDescription("Requests served without a credential under EVENT_TRACKING_ANONYMOUS_SCOPES, by route: clients still to be given a token.")); err != nil {
		otel.Handle(err)
	}
	return in
}

// start extracts an incoming trace context from r's headers and starts
// the request's server span; its name is set by finish, once the route
// is known.
func (in *instrumentation) start(r *http.Request) (context.Context, trace.Span) {
	ctx := in.propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	return in.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", r.Method)))
}

// finish names and ends the span and records the request's metrics.
func (in *instrumentation) finish(ctx context.Context, span trace.Span, method, route string, status int, elapsed time.Duration) {
	spanName := method
	if route != routeUnmatched {
		spanName += " " + route
		span.SetAttributes(attribute.String("http.route", route))
	}
	span.SetName(spanName)
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()

	attrs := metric.WithAttributeSet(attribute.NewSet(
		attribute.String("route", route),
		attribute.String("method", metricMethod(method)),
		attribute.String("status", strconv.Itoa(status)),
	))
	ctx = context.WithoutCancel(ctx)
	in.requests.Add(ctx, 1, attrs)
	if status >= 400 {
		in.errors.Add(ctx, 1, attrs)
	}
	in.duration.Record(ctx, elapsed.Seconds(), attrs)
}

// routeUnmatched is the route label of a request no route served.
const routeUnmatched = "unmatched"

// metricMethod bounds the method label: a client can send any token.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}
