package telemetry_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/activityd/activityd/adapters/telemetry"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func scrape(t *testing.T, tel *telemetry.Telemetry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// TestCacheHooks: the cache hooks' counters are exposed under their
// documented names, with their labels.
func TestCacheHooks(t *testing.T) {
	tel, err := telemetry.New(context.Background(), telemetry.Config{Version: "test", Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	if tel.Exporter != "" {
		t.Errorf("exporter %q without an endpoint", tel.Exporter)
	}
	h, err := telemetry.NewCacheHooks(tel.MeterProvider())
	if err != nil {
		t.Fatal(err)
	}
	h.Observe("v1", "HIT")
	h.Observe("v1", "HIT")
	h.Observe("v1", "MISS")
	h.OnError("get", errors.New("boom"))
	body := scrape(t, tel)
	for _, want := range []string{
		`activityd_cache_requests_total{result="HIT",view="v1"} 2`,
		`activityd_cache_requests_total{result="MISS",view="v1"} 1`,
		`activityd_cache_errors_total{op="get"} 1`,
		`service_name="activityd"`, // target_info
		`service_version="test"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
	if f := otel.GetTextMapPropagator().Fields(); !slices.Contains(f, "traceparent") || !slices.Contains(f, "baggage") {
		t.Errorf("global propagator fields %v", otel.GetTextMapPropagator().Fields())
	}
}

// TestNoExporterStillTraces: without an OTLP endpoint, spans still have
// valid ids (for log lines).
func TestNoExporterStillTraces(t *testing.T) {
	tel, err := telemetry.New(context.Background(), telemetry.Config{Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	_, span := tel.TracerProvider().Tracer("t").Start(context.Background(), "x")
	defer span.End()
	if !span.SpanContext().IsValid() {
		t.Error("span context is not valid")
	}
}

// TestOTLPExporterChoice: an endpoint turns on OTLP, over HTTP unless
// OTEL_EXPORTER_OTLP_PROTOCOL=grpc.
func TestOTLPExporterChoice(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, "otlp/http"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces"}, "otlp/http"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "otlp/grpc"},
	} {
		tel, err := telemetry.New(context.Background(), telemetry.Config{Getenv: env(tc.env)})
		if err != nil {
			t.Fatal(err)
		}
		if tel.Exporter != tc.want {
			t.Errorf("%v: exporter %q, want %q", tc.env, tel.Exporter, tc.want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = tel.Shutdown(ctx)
		cancel()
	}
}
