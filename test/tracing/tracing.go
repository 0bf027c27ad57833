// Package tracing helps tests check the telemetry of real adapters: spans
// recorded in memory (sdktrace's SpanRecorder), metrics scraped from the
// Prometheus exposition of adapters/telemetry, exactly as /metrics serves
// them. RunSQL is the contract every SQL storage adapter's telemetry must
// pass (SQL spans, pool metrics), as test/storagetest is its behaviour's.
// Its own tests follow a request from HTTP to SQL.
package tracing

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/activityd/activityd/adapters/telemetry"
)

// NewRecorder returns a TracerProvider that samples everything and keeps
// every ended span in the returned recorder; shut down when t ends.
func NewRecorder(t testing.TB) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, rec
}

// NewTelemetry returns the service's telemetry (adapters/telemetry) with
// no span exporter, shut down when t ends: its MeterProvider and
// MetricsHandler are the ones /metrics serves.
func NewTelemetry(t testing.TB) *telemetry.Telemetry {
	t.Helper()
	tel, err := telemetry.New(context.Background(), telemetry.Config{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatalf("telemetry.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(ctx)
	})
	return tel
}

// Metrics is a scraped Prometheus text exposition: each sample's value by
// its series (`name{label="value",...}` as exposed), and the comment lines.
type Metrics struct {
	Samples  map[string]float64
	Comments map[string]bool
}

// Has reports whether line is one of the exposition's comment lines
// (# HELP, # TYPE).
func (m Metrics) Has(line string) bool { return m.Comments[line] }

// Get returns the value of series.
func (m Metrics) Get(series string) (float64, bool) {
	v, ok := m.Samples[series]
	return v, ok
}

// Count counts the samples whose series starts with prefix.
func (m Metrics) Count(prefix string) int {
	n := 0
	for s := range m.Samples {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// Scrape serves GET /metrics from tel's MetricsHandler and parses it.
func Scrape(t testing.TB, tel *telemetry.Telemetry) Metrics {
	t.Helper()
	rr := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rr.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rr.Code, rr.Body)
	}
	m := Metrics{Samples: map[string]float64{}, Comments: map[string]bool{}}
	sc := bufio.NewScanner(rr.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
		case strings.HasPrefix(line, "#"):
			m.Comments[line] = true
		default:
			i := strings.LastIndexByte(line, ' ')
			if i < 0 {
				t.Fatalf("bad sample line %q", line)
			}
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err != nil {
				t.Fatalf("bad sample line %q: %v", line, err)
			}
			m.Samples[line[:i]] = v
		}
	}
	return m
}

// SQLSpans returns the client spans of database calls (those with
// db.system.name) among spans, in order.
func SQLSpans(spans []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if _, ok := Attr(s, "db.system.name"); ok && s.SpanKind() == trace.SpanKindClient {
			out = append(out, s)
		}
	}
	return out
}

// Attr returns the value of a span's attribute, as a string.
func Attr(s sdktrace.ReadOnlySpan, key attribute.Key) (string, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.Emit(), true
		}
	}
	return "", false
}

// Describe is a one-line summary of spans, for failure messages.
func Describe(spans []sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	for i, s := range spans {
		if i > 0 {
			b.WriteString("; ")
		}
		q, _ := Attr(s, "db.query.text")
		if len(q) > 60 {
			q = q[:60] + "..."
		}
		b.WriteString(s.Name() + " parent=" + s.Parent().SpanID().String() + " status=" + s.Status().Code.String())
		if q != "" {
			b.WriteString(" " + strconv.Quote(strings.Join(strings.Fields(q), " ")))
		}
	}
	return b.String()
}

// UnderSpan runs f with a context that carries a new span of tp named
// name, ends that span, and returns the SQL spans (SQLSpans) that rec saw
// end meanwhile, after checking them with CheckChildren.
func UnderSpan(t testing.TB, tp trace.TracerProvider, rec *tracetest.SpanRecorder, name string, f func(ctx context.Context)) []sdktrace.ReadOnlySpan {
	t.Helper()
	n := len(rec.Ended())
	ctx, span := tp.Tracer("test").Start(t.Context(), name)
	f(ctx)
	span.End()
	spans := SQLSpans(rec.Ended()[n:])
	CheckChildren(t, spans, span.SpanContext())
	return spans
}

// CheckChildren fails t unless there are spans and each is a client span,
// a child of parent in parent's trace.
func CheckChildren(t testing.TB, spans []sdktrace.ReadOnlySpan, parent trace.SpanContext) {
	t.Helper()
	if len(spans) == 0 {
		t.Fatal("no SQL spans")
	}
	for _, sp := range spans {
		if sp.SpanKind() != trace.SpanKindClient {
			t.Errorf("span %s: kind %v, want client", sp.Name(), sp.SpanKind())
		}
		if sp.Parent().TraceID() != parent.TraceID() || sp.Parent().SpanID() != parent.SpanID() ||
			sp.SpanContext().TraceID() != parent.TraceID() {
			t.Errorf("span %s: parent %v in trace %v, want %v in %v", sp.Name(),
				sp.Parent().SpanID(), sp.SpanContext().TraceID(), parent.SpanID(), parent.TraceID())
		}
	}
}

// FindSpan returns the first of spans named name ("" for any name) whose
// db.query.text contains query ("" for any statement, or none).
func FindSpan(spans []sdktrace.ReadOnlySpan, name, query string) sdktrace.ReadOnlySpan {
	for _, sp := range spans {
		q, ok := Attr(sp, "db.query.text")
		if (name == "" || sp.Name() == name) && (query == "" || ok && strings.Contains(q, query)) {
			return sp
		}
	}
	return nil
}
