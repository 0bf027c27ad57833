package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/storagetest"
	"github.com/activityd/activityd/test/testenv"
	"github.com/activityd/activityd/test/tracing"
)

// newStoreWith is newStore with telemetry in opts, on a URL with param
// ("" for none).
func newStoreWith(t testing.TB, param string, opts storage.Options) *Store {
	t.Helper()
	url, _ := testenv.PostgresSchema(t)
	if k, v, ok := strings.Cut(param, "="); ok {
		url = testenv.WithParam(url, k, v)
	}
	opts.MaxOpenConns, opts.MaxIdleConns = testPool.MaxOpenConns, testPool.MaxIdleConns
	s := openStore(t, url, opts)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

// sqlSpans returns the SQL spans ended since the recorder held skip.
func sqlSpans(rec *tracetest.SpanRecorder, skip int) []sdktrace.ReadOnlySpan {
	return tracing.SQLSpans(rec.Ended()[skip:])
}

// Every statement of a call made under a span is a client span, its
// child, with the statement's text and no values; a call without a span
// makes none. Both with the prepared statement cache and without it.
func TestSQLSpans(t *testing.T) {
	for _, tc := range []struct {
		name, param string
		query       string // span name of a statement run
	}{
		{"prepared", "", "sql.stmt.query"},
		{"unprepared", "statement_cache=off", "sql.conn.query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, rec := tracing.NewRecorder(t)
			s := newStoreWith(t, tc.param, storage.Options{TracerProvider: tp})
			if spans := sqlSpans(rec, 0); len(spans) != 0 {
				t.Fatalf("Migrate (no span in ctx) made SQL spans: %s", tracing.Describe(spans))
			}
			now := time.Now()

			// No span in ctx: no SQL spans.
			bg := context.Background()
			if _, _, err := s.Create(bg, mkEvent(1, "login", now), "t"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.List(bg, domain.Filter{UserID: 1, Limit: 10}); err != nil {
				t.Fatal(err)
			}
			if spans := sqlSpans(rec, 0); len(spans) != 0 {
				t.Fatalf("calls without a span made SQL spans: %s", tracing.Describe(spans))
			}

			// Under a span.
			ctx, parent := tp.Tracer("test").Start(t.Context(), "parent")
			e := mkEvent(2, "upload_file", now)
			if _, created, err := s.Create(ctx, e, "t"); err != nil || !created {
				t.Fatalf("Create: %v created=%v", err, created)
			}
			p, err := s.List(ctx, domain.Filter{UserID: 2, Limit: 10, Order: domain.Desc})
			if err != nil || len(p.Events) != 1 {
				t.Fatalf("List: %v (%d events)", err, len(p.Events))
			}
			parent.End()
			spans := sqlSpans(rec, 0)
			checkChildren(t, spans, parent.SpanContext())
			create := findSpan(spans, tc.query, "INSERT INTO event_ids")
			list := findSpan(spans, tc.query, "FROM events")
			if create == nil || list == nil {
				t.Fatalf("want %s spans of the create and the list, got: %s", tc.query, tracing.Describe(spans))
			}
			for _, sp := range spans {
				if sp.Status().Code == codes.Error {
					t.Errorf("span %s has an error status: %s", sp.Name(), sp.Status().Description)
				}
				for _, kv := range sp.Attributes() {
					if v := kv.Value.Emit(); strings.Contains(v, e.ID.String()) || strings.Contains(v, "upload_file") {
						t.Errorf("span %s: attribute %s holds a parameter value: %q", sp.Name(), kv.Key, v)
					}
				}
				if n := sp.Name(); strings.HasPrefix(n, "sql.rows") || n == "sql.conn.reset_session" {
					t.Errorf("unwanted span %s", n)
				}
			}
			cfg, err := pq.NewConfig(testenv.PostgresBaseURL())
			if err != nil {
				t.Fatal(err)
			}
			for key, want := range map[attribute.Key]string{
				"db.system.name": "postgresql",
				"db.namespace":   cfg.Database,
				"server.address": cfg.Host,
				"server.port":    strconv.Itoa(int(cfg.Port)),
			} {
				if got, _ := tracing.Attr(create, key); got != want {
					t.Errorf("%s = %q, want %q", key, got, want)
				}
			}

			if tc.param == "" {
				// The prepared statements still work through the wrapper:
				// prepared once (the list's here: the create's was
				// prepared by the untraced create above), then executed
				// without preparing again.
				if findSpan(spans, "sql.conn.prepare", "FROM events") == nil {
					t.Errorf("the list was not prepared: %s", tracing.Describe(spans))
				}
				s.stmts.mu.RLock()
				cached := s.stmts.stmts[createSQL] != nil
				s.stmts.mu.RUnlock()
				if !cached {
					t.Error("createSQL is not in the statement cache")
				}
				n := len(rec.Ended())
				ctx, again := tp.Tracer("test").Start(t.Context(), "again")
				if _, _, err := s.Create(ctx, mkEvent(2, "login", now), "t"); err != nil {
					t.Fatal(err)
				}
				again.End()
				more := sqlSpans(rec, n)
				checkChildren(t, more, again.SpanContext())
				if findSpan(more, "sql.stmt.query", "INSERT INTO event_ids") == nil || findSpan(more, "sql.conn.prepare", "") != nil {
					t.Errorf("second create: want one sql.stmt.query and no prepare, got: %s", tracing.Describe(more))
				}
			}
		})
	}
}

// A statement the server refuses records its error on its span.
func TestSQLSpanError(t *testing.T) {
	tp, rec := tracing.NewRecorder(t)
	s := newStoreWith(t, "", storage.Options{TracerProvider: tp})
	ctx, parent := tp.Tracer("test").Start(t.Context(), "parent")
	bad := mkEvent(3, "login", time.Now())
	bad.Status = "BOGUS" // breaks the CHECK constraint
	_, _, err := s.Create(ctx, bad, "t")
	parent.End()
	if err == nil {
		t.Fatal("Create of a BOGUS status succeeded")
	}
	spans := sqlSpans(rec, 0)
	checkChildren(t, spans, parent.SpanContext())
	failed := findSpan(spans, "sql.stmt.query", "INSERT INTO event_ids")
	if failed == nil {
		t.Fatalf("no span for the failed create: %s", tracing.Describe(spans))
	}
	if failed.Status().Code != codes.Error {
		t.Errorf("failed statement's span status = %v, want Error", failed.Status())
	}
	if !hasException(failed, "check constraint") {
		t.Errorf("failed statement's span records no exception event about the constraint: %+v", failed.Events())
	}

	// A call whose context is already cancelled is not an error of the
	// database: database/sql gives up before the driver, so no span. (One
	// cancelled mid-statement fails with lib/pq's 57014, which is recorded:
	// see storage.TraceSQL.)
	n := len(rec.Ended())
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.List(cctx, domain.Filter{UserID: 3, Limit: 10}); err == nil {
		t.Fatal("List with a cancelled context succeeded")
	}
	for _, sp := range sqlSpans(rec, n) {
		if sp.Status().Code == codes.Error {
			t.Errorf("cancelled call: span %s has an error status", sp.Name())
		}
	}
}

// Without a TracerProvider the pool is database/sql's own: nothing wraps
// the driver.
func TestNotWrappedWithoutTracerProvider(t *testing.T) {
	s := newStore(t)
	if d := s.db.Driver(); !strings.Contains(typeName(d), "pq.") {
		t.Errorf("driver = %s, want lib/pq's own", typeName(d))
	}
	tp, _ := tracing.NewRecorder(t)
	traced := newStoreWith(t, "", storage.Options{TracerProvider: tp})
	if d := traced.db.Driver(); strings.Contains(typeName(d), "pq.") {
		t.Errorf("traced driver = %s, want a wrapper", typeName(d))
	}
}

// The pool metrics, as /metrics serves them.
func TestPoolMetrics(t *testing.T) {
	tel := tracing.NewTelemetry(t)
	s := newStoreWith(t, "", storage.Options{MeterProvider: tel.MeterProvider()})
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	m := tracing.Scrape(t, tel)
	if v, ok := m.Get(`activityd_db_connections_max{pool="postgres"}`); !ok || v != float64(testPool.MaxOpenConns) {
		t.Errorf("activityd_db_connections_max = %v (present %v), want %d", v, ok, testPool.MaxOpenConns)
	}
	idle, ok1 := m.Get(`activityd_db_connections{pool="postgres",state="idle"}`)
	inUse, ok2 := m.Get(`activityd_db_connections{pool="postgres",state="in_use"}`)
	if !ok1 || !ok2 || idle+inUse < 1 {
		t.Errorf("activityd_db_connections idle=%v in_use=%v (present %v %v), want at least one", idle, inUse, ok1, ok2)
	}
	for _, series := range []string{
		`activityd_db_connection_waits_total{pool="postgres"}`,
		`activityd_db_connection_wait_duration_seconds_total{pool="postgres"}`,
	} {
		if v, ok := m.Get(series); !ok || v < 0 {
			t.Errorf("%s = %v (present %v)", series, v, ok)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := tracing.Scrape(t, tel).Count("activityd_db_"); n != 0 {
		t.Errorf("%d pool series after Close, want none", n)
	}
}

// The contract suite through the tracing wrapper (its calls carry no span,
// so this checks the wrapper changes no behaviour).
func TestContractTraced(t *testing.T) {
	testenv.NeedPostgres(t)
	tp, _ := tracing.NewRecorder(t)
	storagetest.Run(t, func(t *testing.T) ports.Store {
		return newStoreWith(t, "", storage.Options{TracerProvider: tp})
	})
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

func checkChildren(t *testing.T, spans []sdktrace.ReadOnlySpan, parent trace.SpanContext) {
	t.Helper()
	if len(spans) == 0 {
		t.Fatal("no SQL spans")
	}
	for _, sp := range spans {
		if sp.SpanKind() != trace.SpanKindClient {
			t.Errorf("span %s: kind %v, want client", sp.Name(), sp.SpanKind())
		}
		if sp.Parent().TraceID() != parent.TraceID() || sp.Parent().SpanID() != parent.SpanID() {
			t.Errorf("span %s: parent %v, want %v", sp.Name(), sp.Parent().SpanID(), parent.SpanID())
		}
	}
}

// findSpan returns the first span named name whose statement contains
// query ("" for any).
func findSpan(spans []sdktrace.ReadOnlySpan, name, query string) sdktrace.ReadOnlySpan {
	for _, sp := range spans {
		q, ok := tracing.Attr(sp, "db.query.text")
		if sp.Name() == name && (query == "" || ok && strings.Contains(q, query)) {
			return sp
		}
	}
	return nil
}

func hasException(sp sdktrace.ReadOnlySpan, msg string) bool {
	for _, ev := range sp.Events() {
		if ev.Name != "exception" {
			continue
		}
		for _, kv := range ev.Attributes {
			if kv.Key == "exception.message" && strings.Contains(kv.Value.Emit(), msg) {
				return true
			}
		}
	}
	return false
}
