package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/ports"
)

// withTracing records the server's spans in rec, reading W3C traceparent.
func withTracing(rec *tracetest.SpanRecorder) option {
	return withConfig(func(c *httpapi.Config) {
		c.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		c.Propagator = propagation.TraceContext{}
	})
}

// TestSpanNamedByRouteTemplate: a request's server span is named after the
// route template, not the path, carries the HTTP attributes and continues
// an incoming traceparent; the access log line carries its ids.
func TestSpanNamedByRouteTemplate(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	f := newFixture(t, withTracing(rec))
	e := f.create(f.u1, `{"action":"created","occurred_at":"2025-06-01T11:00:00Z"}`)

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	f.serve(request{method: "GET", path: "/v1/events/" + e.ID, token: f.u1,
		header: map[string]string{"traceparent": "00-" + traceID + "-" + parentID + "-01"}}).want(http.StatusOK)

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans ended, want 2", len(spans))
	}
	if got := spans[0].Name(); got != "POST /v1/events" {
		t.Errorf("create span %q, want POST /v1/events", got)
	}
	s := spans[1]
	if got := s.Name(); got != "GET /v1/events/{id}" {
		t.Errorf("span name %q, want %q", got, "GET /v1/events/{id}")
	}
	if strings.Contains(s.Name(), e.ID) {
		t.Errorf("span name %q contains the event id", s.Name())
	}
	if s.SpanKind() != trace.SpanKindServer {
		t.Errorf("span kind %v, want server", s.SpanKind())
	}
	if got := s.SpanContext().TraceID().String(); got != traceID {
		t.Errorf("trace id %s, want the incoming %s", got, traceID)
	}
	if got := s.Parent().SpanID().String(); got != parentID || !s.Parent().IsRemote() {
		t.Errorf("parent %s (remote %v), want the incoming %s", got, s.Parent().IsRemote(), parentID)
	}
	attrs := map[string]string{}
	for _, kv := range s.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	for k, want := range map[string]string{"http.request.method": "GET", "http.route": "/v1/events/{id}", "http.response.status_code": "200"} {
		if attrs[k] != want {
			t.Errorf("attribute %s = %q, want %q", k, attrs[k], want)
		}
	}

	// The access log line of the request carries the span's ids.
	var found bool
	for line := range strings.Lines(f.logs.String()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != "http request" || m["route"] != "/v1/events/{id}" {
			continue
		}
		found = true
		if m["trace_id"] != traceID || m["span_id"] != s.SpanContext().SpanID().String() {
			t.Errorf("log line trace_id=%v span_id=%v, want %s %s", m["trace_id"], m["span_id"], traceID, s.SpanContext().SpanID())
		}
	}
	if !found {
		t.Error("no access log line for GET /v1/events/{id}")
	}
}

// TestSpanErrorStatus: a 5xx marks the span as an error; a 404 of no route
// is named by the method alone.
func TestSpanErrorStatus(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	var down *downStore
	f := newFixture(t, withTracing(rec), withStore(func(st *memory.Store) ports.Events {
		down = &downStore{Store: st}
		down.down.Store(true)
		return down
	}))
	f.do("GET", "/v1/events", f.u1, "").want(http.StatusServiceUnavailable)
	f.do("GET", "/no/such/path", "", "").want(http.StatusNotFound)
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	if spans[0].Status().Code.String() != "Error" {
		t.Errorf("503 span status %v, want Error", spans[0].Status())
	}
	if got := spans[1].Name(); got != "GET" {
		t.Errorf("unmatched span name %q, want GET", got)
	}
}

// TestMetricsExposed drives requests through the server with a real
// MeterProvider and the OpenTelemetry Prometheus exporter, scrapes
// /metrics and checks the series: route templates, numeric statuses.
func TestMetricsExposed(t *testing.T) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes))
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	f := newFixture(t, withConfig(func(c *httpapi.Config) {
		c.MeterProvider = mp
		c.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	}))

	e := f.create(f.u1, `{"action":"created","occurred_at":"2025-06-01T11:00:00Z"}`)
	f.do("GET", "/v1/events/"+e.ID, f.u1, "").want(http.StatusOK)
	f.do("GET", "/v1/events/"+e.ID, f.u1, "").want(http.StatusOK)
	f.do("GET", "/v1/events/"+e.ID, "", "").want(http.StatusUnauthorized)
	f.do("GET", "/no/such/path", "", "").want(http.StatusNotFound)

	r := f.do("GET", "/metrics", "", "").want(http.StatusOK)
	if ct := r.hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	body := string(r.body)
	for _, want := range []string{
		`activityd_http_requests_total{method="POST",route="/v1/events",status="201"} 1`,
		`activityd_http_requests_total{method="GET",route="/v1/events/{id}",status="200"} 2`,
		`activityd_http_requests_total{method="GET",route="/v1/events/{id}",status="401"} 1`,
		`activityd_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`activityd_http_requests_errors_total{method="GET",route="/v1/events/{id}",status="401"} 1`,
		`activityd_http_requests_errors_total{method="GET",route="unmatched",status="404"} 1`,
		`activityd_http_request_duration_seconds_count{method="GET",route="/v1/events/{id}",status="200"} 2`,
		`# TYPE activityd_http_request_duration_seconds histogram`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, `activityd_http_requests_errors_total{method="GET",route="/v1/events/{id}",status="200"}`) {
		t.Error("a 200 is counted as an error")
	}
	if strings.Contains(body, e.ID) || strings.Contains(body, "/no/such/path") {
		t.Error("/metrics carries an id or a raw path")
	}
	// Only the three expected families of ours, with exactly these names.
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (activityd_\S+)`).FindAllStringSubmatch(body, -1) {
		names[m[1]] = true
	}
	for _, n := range []string{"activityd_http_requests_total", "activityd_http_requests_errors_total", "activityd_http_request_duration_seconds"} {
		if !names[n] {
			t.Errorf("no metric family %s (have %v)", n, names)
		}
	}
}
