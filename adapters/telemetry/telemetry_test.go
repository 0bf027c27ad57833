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
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func newTelemetry(t *testing.T) *telemetry.Telemetry {
	t.Helper()
	tel, err := telemetry.New(context.Background(), telemetry.Config{Version: "test", Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel
}

func wantSeries(t *testing.T, body string, series ...string) {
	t.Helper()
	for _, s := range series {
		if !strings.Contains(body, s+"\n") {
			t.Errorf("/metrics lacks %s", s)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}

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
	if tel.ClientTracerProvider() != nil {
		t.Error("client spans (SQL, Redis) would be made with nowhere to export them")
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
		if tel.ClientTracerProvider() != tel.TracerProvider() {
			t.Errorf("%v: exporting, but no client spans (SQL, Redis)", tc.env)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = tel.Shutdown(ctx)
		cancel()
	}
}

// TestObserver: what the use cases report becomes the documented series,
// and the action label stays bounded when any action is accepted.
func TestObserver(t *testing.T) {
	for _, tc := range []struct {
		name  string
		vocab domain.Vocabulary
		want  string // the label of action "signup"
	}{
		{"closed vocabulary", mustVocab(t, "login", "signup"), "signup"},
		{"any action", domain.AnyAction(), "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tel := newTelemetry(t)
			o, err := telemetry.NewObserver(tel.MeterProvider(), tc.vocab)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			o.Recorded(ctx, "login")
			o.Recorded(ctx, "login")
			o.Recorded(ctx, "signup")
			o.Transitioned(ctx, domain.StatusPending, domain.StatusInProgress, app.TransitionOK)
			o.Transitioned(ctx, domain.StatusDone, domain.StatusPending, app.TransitionInvalid)
			w := domain.Window{Start: time.Unix(0, 0), End: time.Unix(3600, 0)}
			o.Computed(ctx, w, 10, 30*time.Millisecond, nil)
			o.Computed(ctx, w, 0, 2*time.Second, errors.New("down"))
			wantSeries(t, scrape(t, tel),
				`activityd_events_recorded_total{action="login"} 2`,
				`activityd_events_recorded_total{action="`+tc.want+`"} 1`,
				`activityd_event_transitions_total{from="PENDING",result="ok",to="IN_PROGRESS"} 1`,
				`activityd_event_transitions_total{from="DONE",result="invalid",to="PENDING"} 1`,
				`activityd_count_runs_total{result="ok"} 1`,
				`activityd_count_runs_total{result="error"} 1`,
				`activityd_count_windows_computed_total 1`,
				`activityd_count_run_duration_seconds_bucket{result="ok",le="0.05"} 1`,
				`activityd_count_run_duration_seconds_bucket{result="error",le="1"} 0`,
				`activityd_count_run_duration_seconds_count{result="error"} 1`,
			)
		})
	}
}

func mustVocab(t *testing.T, actions ...string) domain.Vocabulary {
	t.Helper()
	v, err := domain.NewVocabulary(actions...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestCountLag: the lag gauge is read at each scrape; a lag that cannot
// be read leaves the series out rather than reporting a wrong value.
func TestCountLag(t *testing.T) {
	tel := newTelemetry(t)
	var lag time.Duration
	var fail error
	unregister, err := telemetry.ObserveCountLag(tel.MeterProvider(), func(context.Context, time.Time) (time.Duration, error) {
		return lag, fail
	})
	if err != nil {
		t.Fatal(err)
	}
	lag = 90 * time.Second
	wantSeries(t, scrape(t, tel), `activityd_count_lag_seconds 90`)
	lag = 0
	wantSeries(t, scrape(t, tel), `activityd_count_lag_seconds 0`)
	fail = errors.New("storage down")
	if body := scrape(t, tel); strings.Contains(body, "activityd_count_lag_seconds ") {
		t.Errorf("a lag that could not be read was exported:\n%s", body)
	}
	fail = nil
	if err := unregister(); err != nil {
		t.Fatal(err)
	}
	if body := scrape(t, tel); strings.Contains(body, "activityd_count_lag_seconds ") {
		t.Error("the lag is still exported after unregistering")
	}
}

// TestSDKDisabled: OTEL_SDK_DISABLED=true makes every provider a no-op:
// spans are not recorded, use-case metrics are not exported, and
// /metrics still serves the Go runtime's.
func TestSDKDisabled(t *testing.T) {
	tel, err := telemetry.New(context.Background(), telemetry.Config{Getenv: env(map[string]string{
		"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	if !tel.Disabled || tel.Exporter != "" {
		t.Fatalf("Disabled %v, Exporter %q", tel.Disabled, tel.Exporter)
	}
	_, span := tel.TracerProvider().Tracer("t").Start(context.Background(), "x")
	if span.IsRecording() || span.SpanContext().IsValid() {
		t.Error("a disabled SDK made a real span")
	}
	span.End()
	o, err := telemetry.NewObserver(tel.MeterProvider(), domain.DefaultVocabulary())
	if err != nil {
		t.Fatal(err)
	}
	o.Recorded(context.Background(), "login")
	body := scrape(t, tel)
	if strings.Contains(body, "activityd_") || strings.Contains(body, "target_info") {
		t.Errorf("a disabled SDK exported OpenTelemetry metrics:\n%s", body)
	}
	if !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics lost the Go runtime's metrics:\n%s", body)
	}
}
