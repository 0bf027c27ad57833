package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/storagetest"
	"github.com/activityd/activityd/test/tracing"
)

// Every statement of a call made under a span is a client span, its
// child, with the statement's text and no values; a call without a span
// makes none. For a file database (reads and writes on their own pools)
// and an in-memory one.
func TestSQLSpans(t *testing.T) {
	for _, tc := range []struct{ name, url string }{
		{"file", "sqlite:" + filepath.Join(t.TempDir(), "a.db")},
		{"memory", "sqlite::memory:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, rec := tracing.NewRecorder(t)
			s := openURL(t, tc.url, storage.Options{TracerProvider: tp})
			now := time.Now()

			// No span in ctx: no SQL spans (nor from Open and Migrate).
			bg := context.Background()
			if _, _, err := s.Create(bg, newEvent(1, "login", now), "t"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.List(bg, domain.Filter{UserID: 1, Limit: 10}); err != nil {
				t.Fatal(err)
			}
			if spans := tracing.SQLSpans(rec.Ended()); len(spans) != 0 {
				t.Fatalf("calls without a span made SQL spans: %s", tracing.Describe(spans))
			}

			ctx, parent := tp.Tracer("test").Start(t.Context(), "parent")
			e := newEvent(2, "upload_file", now)
			if _, created, err := s.Create(ctx, e, "t"); err != nil || !created {
				t.Fatalf("Create: %v created=%v", err, created)
			}
			p, err := s.List(ctx, domain.Filter{UserID: 2, Limit: 10, Order: domain.Desc})
			if err != nil || len(p.Events) != 1 {
				t.Fatalf("List: %v (%d events)", err, len(p.Events))
			}
			parent.End()
			spans := tracing.SQLSpans(rec.Ended())
			checkChildren(t, spans, parent.SpanContext())
			if findSpan(spans, "INSERT INTO events") == nil || findSpan(spans, "FROM events") == nil {
				t.Fatalf("want spans of the create's insert and the list's select, got: %s", tracing.Describe(spans))
			}
			var begin, commit bool
			for _, sp := range spans {
				if got, _ := tracing.Attr(sp, "db.system.name"); got != "sqlite" {
					t.Errorf("span %s: db.system.name = %q", sp.Name(), got)
				}
				if sp.Status().Code == codes.Error {
					t.Errorf("span %s has an error status: %s", sp.Name(), sp.Status().Description)
				}
				for _, kv := range sp.Attributes() {
					if v := kv.Value.Emit(); strings.Contains(v, "upload_file") {
						t.Errorf("span %s: attribute %s holds a parameter value: %q", sp.Name(), kv.Key, v)
					}
				}
				switch n := sp.Name(); {
				case strings.HasPrefix(n, "sql.rows"), n == "sql.conn.reset_session":
					t.Errorf("unwanted span %s", n)
				case n == "sql.conn.begin_tx":
					begin = true
				case n == "sql.tx.commit":
					commit = true
				}
			}
			if !begin || !commit {
				t.Errorf("the create's transaction has no begin or commit span: %s", tracing.Describe(spans))
			}
		})
	}
}

// A statement SQLite refuses records its error on its span; one whose
// context is cancelled while it runs does not.
func TestSQLSpanErrors(t *testing.T) {
	tp, rec := tracing.NewRecorder(t)
	s := openTemp(t, storage.Options{TracerProvider: tp})
	ctx, parent := tp.Tracer("test").Start(t.Context(), "parent")
	bad := newEvent(3, "login", time.Now())
	bad.Status = "BOGUS" // breaks the CHECK constraint
	_, _, err := s.Create(ctx, bad, "t")
	parent.End()
	if err == nil {
		t.Fatal("Create of a BOGUS status succeeded")
	}
	spans := tracing.SQLSpans(rec.Ended())
	checkChildren(t, spans, parent.SpanContext())
	failed := findSpan(spans, "INSERT INTO events")
	if failed == nil {
		t.Fatalf("no span for the failed insert: %s", tracing.Describe(spans))
	}
	if failed.Status().Code != codes.Error || !hasException(failed, "CHECK constraint failed") {
		t.Errorf("failed statement's span: status %v, events %+v; want Error and the exception", failed.Status(), failed.Events())
	}

	// Cancelled while it runs: the span ends, without an error status.
	n := len(rec.Ended())
	ctx, parent = tp.Tracer("test").Start(t.Context(), "cancelled")
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	var count int64
	err = s.r.GetContext(cctx, &count, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)
		SELECT count(*) FROM c`)
	parent.End()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("long query: %v, want context.Canceled", err)
	}
	spans = tracing.SQLSpans(rec.Ended()[n:])
	checkChildren(t, spans, parent.SpanContext())
	if sp := findSpan(spans, "WITH RECURSIVE"); sp == nil || sp.Status().Code == codes.Error {
		t.Errorf("cancelled query: want a span without an error status, got: %s", tracing.Describe(spans))
	}
}

// Concurrent creates share a transaction (group commit): its SQL spans are
// children of a group span, itself a child of the first traced request's
// span and linked to the others'.
func TestGroupCommitSpan(t *testing.T) {
	tp, rec := tracing.NewRecorder(t)
	s := openTemp(t, storage.Options{TracerProvider: tp})
	now := time.Now()
	tr := tp.Tracer("test")
	var reqs []*createReq
	var parents []trace.Span
	for i := range 3 {
		ctx := t.Context()
		if i != 1 { // the second request is not traced
			var sp trace.Span
			ctx, sp = tr.Start(ctx, fmt.Sprintf("request %d", i))
			parents = append(parents, sp)
		}
		e := newEvent(int64(i+1), "login", now.Add(time.Duration(i)*time.Microsecond))
		reqs = append(reqs, &createReq{ctx: ctx, e: e, by: "x", done: make(chan createRes, 1)})
	}
	s.flushGroup(reqs)
	for _, r := range reqs {
		if res := <-r.done; res.err != nil || !res.c.Created {
			t.Fatalf("create: %v %+v", res.err, res.c)
		}
	}
	for _, sp := range parents {
		sp.End()
	}
	var group sdktrace.ReadOnlySpan
	for _, sp := range rec.Ended() {
		if sp.Name() == "sqlite.group_commit" {
			group = sp
		}
	}
	if group == nil {
		t.Fatal("no sqlite.group_commit span")
	}
	first, third := parents[0].SpanContext(), parents[1].SpanContext()
	if group.Parent().SpanID() != first.SpanID() || group.SpanContext().TraceID() != first.TraceID() {
		t.Errorf("group span's parent = %v, want the first request's %v", group.Parent().SpanID(), first.SpanID())
	}
	if l := group.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != third.SpanID() {
		t.Errorf("group span's links = %+v, want the third request's span", l)
	}
	if got, _ := tracing.Attr(group, "db.operation.batch.size"); got != "3" {
		t.Errorf("db.operation.batch.size = %q, want 3", got)
	}
	spans := tracing.SQLSpans(rec.Ended())
	checkChildren(t, spans, group.SpanContext())
	if findSpan(spans, "INSERT INTO events") == nil {
		t.Errorf("no insert span under the group span: %s", tracing.Describe(spans))
	}
}

// Without a TracerProvider, or with a no-op one, the pools are
// database/sql's own: nothing wraps the driver.
func TestNotWrappedWithoutTracerProvider(t *testing.T) {
	for _, opts := range []storage.Options{{}, {TracerProvider: nooptrace.NewTracerProvider()}} {
		s := openTemp(t, opts)
		for _, db := range []*sqlx.DB{s.w, s.r} {
			if name := fmt.Sprintf("%T", db.Driver()); name != "*sqlite.Driver" {
				t.Errorf("%T: driver = %s, want *sqlite.Driver", opts.TracerProvider, name)
			}
		}
		if s.tracer != nil {
			t.Errorf("%T: the store has a tracer", opts.TracerProvider)
		}
	}
	tp, _ := tracing.NewRecorder(t)
	s := openTemp(t, storage.Options{TracerProvider: tp})
	if name := fmt.Sprintf("%T", s.w.Driver()); name == "*sqlite.Driver" {
		t.Errorf("traced: driver = %s, want a wrapper", name)
	}
}

// The pool metrics, as /metrics serves them: a write pool of one
// connection and a read pool of MaxOpenConns; one pool in memory.
func TestPoolMetrics(t *testing.T) {
	tel := tracing.NewTelemetry(t)
	s := openTemp(t, storage.Options{MeterProvider: tel.MeterProvider(), MaxOpenConns: 3})
	if _, _, err := s.Create(t.Context(), newEvent(1, "login", time.Now()), "t"); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	m := tracing.Scrape(t, tel)
	checkPool(t, m, PoolWrite, 1)
	checkPool(t, m, PoolRead, 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := tracing.Scrape(t, tel).Count("activityd_db_"); n != 0 {
		t.Errorf("%d pool series after Close, want none", n)
	}

	mem := openURL(t, "sqlite::memory:", storage.Options{MeterProvider: tel.MeterProvider()})
	if err := mem.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	m = tracing.Scrape(t, tel)
	checkPool(t, m, PoolMemory, 1)
	if n := m.Count("activityd_db_connections_max{"); n != 1 {
		t.Errorf("%d pools in memory, want 1", n)
	}
}

func checkPool(t *testing.T, m tracing.Metrics, pool string, maxOpen int) {
	t.Helper()
	if v, ok := m.Get(`activityd_db_connections_max{pool="` + pool + `"}`); !ok || v != float64(maxOpen) {
		t.Errorf("%s: activityd_db_connections_max = %v (present %v), want %d", pool, v, ok, maxOpen)
	}
	idle, ok1 := m.Get(`activityd_db_connections{pool="` + pool + `",state="idle"}`)
	inUse, ok2 := m.Get(`activityd_db_connections{pool="` + pool + `",state="in_use"}`)
	if !ok1 || !ok2 || idle+inUse < 1 || idle+inUse > float64(maxOpen) {
		t.Errorf("%s: activityd_db_connections idle=%v in_use=%v (present %v %v), want 1 to %d", pool, idle, inUse, ok1, ok2, maxOpen)
	}
	for _, name := range []string{"activityd_db_connection_waits_total", "activityd_db_connection_wait_duration_seconds_total"} {
		if v, ok := m.Get(name + `{pool="` + pool + `"}`); !ok || v < 0 {
			t.Errorf("%s: %s = %v (present %v)", pool, name, v, ok)
		}
	}
}

// The contract suite through the tracing wrapper (its calls carry no span,
// so this checks the wrapper changes no behaviour).
func TestContractTraced(t *testing.T) {
	tp, _ := tracing.NewRecorder(t)
	storagetest.Run(t, func(t *testing.T) ports.Store { return openTemp(t, storage.Options{TracerProvider: tp}) })
}

// openURL opens and migrates a store on url, closed when the test ends.
func openURL(t *testing.T, url string, opts storage.Options) *Store {
	t.Helper()
	s, err := Open(t.Context(), url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

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

// findSpan returns the first span whose statement contains query.
func findSpan(spans []sdktrace.ReadOnlySpan, query string) sdktrace.ReadOnlySpan {
	for _, sp := range spans {
		if q, ok := tracing.Attr(sp, "db.query.text"); ok && strings.Contains(q, query) {
			return sp
		}
	}
	return nil
}

func hasException(sp sdktrace.ReadOnlySpan, msg string) bool {
	for _, ev := range sp.Events() {
		for _, kv := range ev.Attributes {
			if ev.Name == "exception" && kv.Key == "exception.message" && strings.Contains(kv.Value.Emit(), msg) {
				return true
			}
		}
	}
	return false
}
