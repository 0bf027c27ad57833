package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/testenv"
	"github.com/activityd/activityd/test/tracing"
)

// The telemetry contract of SQL stores, for a file database (a write pool
// of one connection, a read pool of MaxOpenConns) and an in-memory one (a
// single pool of one connection).
func TestTracingContract(t *testing.T) {
	for _, tc := range []struct {
		name  string
		url   func(t testing.TB) string
		pools func(maxOpen int) map[string]int
	}{
		{"file", testenv.SQLiteURL, func(maxOpen int) map[string]int { return map[string]int{PoolWrite: 1, PoolRead: maxOpen} }},
		{"memory", func(testing.TB) string { return "sqlite::memory:" }, func(int) map[string]int { return map[string]int{PoolMemory: 1} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tracing.RunSQL(t, tracing.SQLStore{
				System:    "sqlite",
				Open:      func(t *testing.T, opts storage.Options) ports.Store { return openURL(t, tc.url(t), opts) },
				Insert:    tracing.Statement{Span: "sql.conn.query", Text: "INSERT INTO events"},
				Select:    tracing.Statement{Span: "sql.conn.query", Text: "FROM events"},
				Violation: "CHECK constraint failed",
				Driver:    "*sqlite.Driver",
				Drivers: func(s ports.Store) []driver.Driver {
					st := s.(*Store)
					return []driver.Driver{st.w.Driver(), st.r.Driver()}
				},
				Pools: tc.pools,
			})
		})
	}
}

// A create's transaction has its begin and commit spans, for a file
// database and an in-memory one.
func TestCreateTransactionSpans(t *testing.T) {
	for _, url := range []string{testenv.SQLiteURL(t), "sqlite::memory:"} {
		tp, rec := tracing.NewRecorder(t)
		s := openURL(t, url, storage.Options{TracerProvider: tp})
		spans := tracing.UnderSpan(t, tp, rec, "parent", func(ctx context.Context) {
			if _, _, err := s.Create(ctx, newEvent(2, "upload_file", time.Now()), "t"); err != nil {
				t.Fatal(err)
			}
		})
		if tracing.FindSpan(spans, "sql.conn.begin_tx", "") == nil || tracing.FindSpan(spans, "sql.tx.commit", "") == nil {
			t.Errorf("%s: the create's transaction has no begin or commit span: %s", url, tracing.Describe(spans))
		}
	}
}

// A statement whose context is cancelled while it runs ends its span
// without an error status (SQLite's own "interrupted" aside: see
// storage.TraceSQL).
func TestSQLSpanCancelled(t *testing.T) {
	tp, rec := tracing.NewRecorder(t)
	s := openTemp(t, storage.Options{TracerProvider: tp})
	var err error
	spans := tracing.UnderSpan(t, tp, rec, "cancelled", func(ctx context.Context) {
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(50*time.Millisecond, cancel)
		var count int64
		err = s.r.GetContext(cctx, &count, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)
			SELECT count(*) FROM c`)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("long query: %v, want context.Canceled", err)
		}
	})
	if sp := tracing.FindSpan(spans, "", "WITH RECURSIVE"); sp == nil || sp.Status().Code == codes.Error {
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
	var calls []storage.Call[storage.CreateReq]
	var parents []trace.Span
	for i := range 3 {
		ctx := t.Context()
		if i != 1 { // the second request is not traced
			var sp trace.Span
			ctx, sp = tr.Start(ctx, fmt.Sprintf("request %d", i))
			parents = append(parents, sp)
		}
		e := newEvent(int64(i+1), "login", now.Add(time.Duration(i)*time.Microsecond))
		calls = append(calls, storage.Call[storage.CreateReq]{Ctx: ctx, Req: storage.CreateReq{Event: e, By: "x"}})
	}
	results := s.flushGroup(calls)
	if len(results) != len(calls) {
		t.Fatalf("%d answers for %d requests", len(results), len(calls))
	}
	for _, res := range results {
		if res.Err != nil || !res.Created {
			t.Fatalf("create: %v %+v", res.Err, res)
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
	tracing.CheckChildren(t, spans, group.SpanContext())
	if tracing.FindSpan(spans, "", "INSERT INTO events") == nil {
		t.Errorf("no insert span under the group span: %s", tracing.Describe(spans))
	}
}

// Without a TracerProvider, or with a no-op one, the store has no tracer
// for its group commit spans.
func TestNoTracerWithoutTracerProvider(t *testing.T) {
	for _, opts := range []storage.Options{{}, {TracerProvider: nooptrace.NewTracerProvider()}} {
		if s := openTemp(t, opts); s.tracer != nil {
			t.Errorf("%T: the store has a tracer", opts.TracerProvider)
		}
	}
}
