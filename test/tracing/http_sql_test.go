package tracing_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/stores"
	"github.com/activityd/activityd/test/tracing"
)

// TestHTTPToSQL follows requests from the HTTP server, built as
// cmd/activityd builds it, to the SQL statements of a SQLite store opened
// with the same TracerProvider: each statement's span is in the request's
// trace, under its server span, which is named after the route template;
// and /metrics serves the store's pool metrics.
func TestHTTPToSQL(t *testing.T) {
	tp, rec := tracing.NewRecorder(t)
	tel := tracing.NewTelemetry(t)
	st := stores.SQLite(t, storage.Options{
		MaxOpenConns:   4,
		TracerProvider: tp,
		MeterProvider:  tel.MeterProvider(),
	})
	events := app.NewEvents(st, ports.SystemClock, domain.DefaultLimits())
	counts := app.NewCounts(st, ports.SystemClock, app.CountsConfig{})
	tokens := app.NewTokens(st, ports.SystemClock)
	srv := httptest.NewServer(httpapi.NewServer(httpapi.Config{
		Events:         events,
		Counts:         counts,
		Auth:           tokens,
		Storage:        st,
		AuthDisabled:   true,
		TracerProvider: tp,
		MeterProvider:  tel.MeterProvider(),
		Metrics:        tel.MetricsHandler(),
	}))
	t.Cleanup(srv.Close)
	if spans := tracing.SQLSpans(rec.Ended()); len(spans) != 0 {
		t.Fatalf("opening and migrating made SQL spans: %s", tracing.Describe(spans))
	}

	body := call(t, srv, http.MethodPost, "/v1/events", `{"user_id":42,"action":"login"}`, http.StatusCreated)
	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil || created.ID == "" {
		t.Fatalf("POST /v1/events: id not found in %s (%v)", body, err)
	}
	call(t, srv, http.MethodGet, "/v1/events?user_id=42", "", http.StatusOK)
	call(t, srv, http.MethodGet, "/v1/events/"+created.ID, "", http.StatusOK)

	// The server span ends after the response is written: wait for it.
	routes := []struct{ name, query string }{
		{"POST /v1/events", "INSERT INTO events"},
		{"GET /v1/events", "FROM events"},
		{"GET /v1/events/{id}", "FROM events WHERE id = ?"},
	}
	spans := waitServerSpans(t, rec, len(routes))
	for _, sp := range spans {
		if sp.SpanKind() == trace.SpanKindServer && strings.Contains(sp.Name(), created.ID) {
			t.Errorf("server span %q names the raw path", sp.Name())
		}
	}
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, sp := range spans {
		byID[sp.SpanContext().SpanID()] = sp
	}
	sqlSpans := tracing.SQLSpans(spans)
	for _, r := range routes {
		server := findServer(spans, r.name)
		if server == nil {
			t.Errorf("no server span named %q among: %s", r.name, names(spans))
			continue
		}
		var children []sdktrace.ReadOnlySpan
		for _, sp := range sqlSpans {
			if under(sp, server) {
				children = append(children, sp)
			}
		}
		if len(children) == 0 {
			t.Errorf("%s: no SQL spans under the server span; SQL spans: %s", r.name, tracing.Describe(sqlSpans))
			continue
		}
		t.Logf("%s: %s", r.name, tracing.Describe(children))
		found := false
		for _, sp := range children {
			if sp.SpanContext().TraceID() != server.SpanContext().TraceID() {
				t.Errorf("%s: SQL span %s in another trace", r.name, sp.Name())
			}
			if q, _ := tracing.Attr(sp, "db.query.text"); strings.Contains(q, r.query) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no SQL span runs %q: %s", r.name, r.query, tracing.Describe(children))
		}
	}
	// Every SQL span belongs to a request.
	for _, sp := range sqlSpans {
		if findAncestor(sp, byID, func(a sdktrace.ReadOnlySpan) bool { return a.SpanKind() == trace.SpanKindServer }) == nil {
			t.Errorf("SQL span %s (%s) is under no request", sp.Name(), tracing.Describe([]sdktrace.ReadOnlySpan{sp}))
		}
	}

	// The pool metrics are on /metrics.
	m := call(t, srv, http.MethodGet, "/metrics", "", http.StatusOK)
	for _, line := range []string{
		`activityd_db_connections_max{pool="sqlite_write"} 1`,
		`activityd_db_connections_max{pool="sqlite_read"} 4`,
		`activityd_db_connections{pool="sqlite_read",state="idle"} `,
		`activityd_db_connections{pool="sqlite_write",state="in_use"} `,
		`activityd_db_connection_waits_total{pool="sqlite_write"} `,
		`activityd_db_connection_wait_duration_seconds_total{pool="sqlite_read"} `,
	} {
		if !strings.Contains(m, "\n"+line) {
			t.Errorf("/metrics has no line starting %q", line)
		}
	}
}

func call(t *testing.T, srv *httptest.Server, method, path, body string, want int) string {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	return string(b)
}

// waitServerSpans waits until n server spans have ended and returns every
// ended span.
func waitServerSpans(t *testing.T, rec *tracetest.SpanRecorder, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		spans := rec.Ended()
		got := 0
		for _, sp := range spans {
			if sp.SpanKind() == trace.SpanKindServer {
				got++
			}
		}
		if got >= n {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d server spans ended, want %d: %s", got, n, names(spans))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func findServer(spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	for _, sp := range spans {
		if sp.SpanKind() == trace.SpanKindServer && sp.Name() == name {
			return sp
		}
	}
	return nil
}

// under reports whether sp is a child of server: same trace, its parent
// span id.
func under(sp, server sdktrace.ReadOnlySpan) bool {
	return sp.Parent().TraceID() == server.SpanContext().TraceID() && sp.Parent().SpanID() == server.SpanContext().SpanID()
}

func findAncestor(sp sdktrace.ReadOnlySpan, byID map[trace.SpanID]sdktrace.ReadOnlySpan, match func(sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
	for i := 0; i < 16; i++ {
		p, ok := byID[sp.Parent().SpanID()]
		if !ok || p.SpanContext().TraceID() != sp.SpanContext().TraceID() {
			return nil
		}
		if match(p) {
			return p
		}
		sp = p
	}
	return nil
}

func names(spans []sdktrace.ReadOnlySpan) string {
	var out []string
	for _, sp := range spans {
		out = append(out, sp.Name())
	}
	return strings.Join(out, ", ")
}
