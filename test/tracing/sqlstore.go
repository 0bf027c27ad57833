package tracing

import (
	"context"
	"database/sql/driver"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/storagetest"
)

// SQLStore describes a SQL storage adapter to RunSQL.
type SQLStore struct {
	// System is the db.system.name every SQL span carries: "postgresql",
	// "sqlite".
	System string
	// Attributes are the other attributes, with their values, every SQL
	// span carries (db.namespace, server.address...); nil for none.
	Attributes map[attribute.Key]string
	// Open returns a fresh, empty, migrated store opened with opts (and
	// the adapter's defaults where opts is zero), closed when t ends
	// (t.Cleanup); Close must be safe to call again.
	Open func(t *testing.T, opts storage.Options) ports.Store
	// Insert is the statement that stores the event of a Create, Select
	// the one that reads the events of a List.
	Insert, Select Statement
	// Violation is part of the error message of a Create the database
	// refuses for breaking a CHECK constraint (an event whose status is
	// not one of domain's): "check constraint", "CHECK constraint failed".
	Violation string
	// Driver is the type, as fmt's %T prints it, of the adapter's own
	// database/sql driver: "*pq.Driver", "*sqlite.Driver".
	Driver string
	// Drivers returns the drivers (sql.DB.Driver) of the pools of s, a
	// store Open returned.
	Drivers func(s ports.Store) []driver.Driver
	// Pools returns the pool label of each pool of a store opened with
	// Options.MaxOpenConns = maxOpenConns, and the bound (the most
	// connections it opens) the pool reports for it.
	Pools func(maxOpenConns int) map[string]int
}

// Statement names a statement's span: Span is the span's name ("" for
// any), Text a part of its db.query.text.
type Statement struct {
	Span, Text string
}

// RunSQL checks the telemetry a SQL storage adapter promises with
// storage.Options (see storage.TraceSQL and storage.ObservePool), as
// storagetest.Run checks its behaviour:
//
//   - Open and Migrate, and calls whose context carries no span, make no
//     SQL spans;
//   - a Create and a List under a span make client SQL spans, children of
//     it in its trace: a.Insert's and a.Select's among them, each with
//     db.system.name = a.System and a.Attributes, none with an error
//     status, a parameter's value in an attribute (the event's id, action,
//     metadata, author), nor for iterating rows or resetting a session;
//   - a statement the database refuses records an Error status and an
//     exception event on its span; a call whose context is already
//     cancelled records no error;
//   - without a TracerProvider, or with a no-op one, the pools use the
//     adapter's own driver (a.Driver); with one, otelsql's wrapper;
//   - the pool metrics, as /metrics serves them, have the series of each
//     pool a.Pools names and of no other: its bound as a.Pools gives it for
//     the configured MaxOpenConns, from 1 to that many open connections
//     (idle and in use), its waits and time waited; none once the store is
//     closed;
//   - storagetest's contract passes through the tracing wrapper.
func RunSQL(t *testing.T, a SQLStore) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, a SQLStore)
	}{
		{"SpansUnderParentOnly", testSpans},
		{"SpanErrors", testSpanErrors},
		{"NotWrappedWithoutTracerProvider", testNotWrapped},
		{"PoolMetrics", testPoolMetrics},
		{"StoreContractTraced", testContractTraced},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, a) })
	}
}

// Parameter values RunSQL looks for in span attributes.
const (
	secretAction   = "upload_file"
	secretAuthor   = "author-in-a-parameter"
	secretMetadata = "metadata-in-a-parameter"
)

// sqlEvent is a new event as the app builds it, its metadata holding
// secretMetadata.
func sqlEvent(user int64, action string, at time.Time) domain.Event {
	at = domain.Normalize(at)
	return domain.Event{
		ID: domain.NewID(at), UserID: user, Action: domain.Action(action), Status: domain.StatusPending,
		OccurredAt: at, RecordedAt: at, UpdatedAt: at, Metadata: []byte(`{"k":"` + secretMetadata + `"}`),
	}
}

func testSpans(t *testing.T, a SQLStore) {
	tp, rec := NewRecorder(t)
	s := a.Open(t, storage.Options{TracerProvider: tp})
	if spans := SQLSpans(rec.Ended()); len(spans) != 0 {
		t.Fatalf("Open and Migrate (no span in ctx) made SQL spans: %s", Describe(spans))
	}
	now := time.Now()

	bg := context.Background()
	if _, _, err := s.Create(bg, sqlEvent(1, "login", now), secretAuthor); err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(bg, domain.Filter{UserID: 1, Limit: 10}); err != nil {
		t.Fatal(err)
	}
	if spans := SQLSpans(rec.Ended()); len(spans) != 0 {
		t.Fatalf("calls without a span made SQL spans: %s", Describe(spans))
	}

	e := sqlEvent(2, secretAction, now)
	spans := UnderSpan(t, tp, rec, "parent", func(ctx context.Context) {
		if _, created, err := s.Create(ctx, e, secretAuthor); err != nil || !created {
			t.Fatalf("Create: %v created=%v", err, created)
		}
		p, err := s.List(ctx, domain.Filter{UserID: 2, Limit: 10, Order: domain.Desc})
		if err != nil || len(p.Events) != 1 || p.Events[0].ID != e.ID {
			t.Fatalf("List: %v (%d events), want the one created", err, len(p.Events))
		}
	})
	for _, st := range []Statement{a.Insert, a.Select} {
		if FindSpan(spans, st.Span, st.Text) == nil {
			t.Errorf("no span %q of a statement with %q: %s", st.Span, st.Text, Describe(spans))
		}
	}
	want := map[attribute.Key]string{"db.system.name": a.System}
	for k, v := range a.Attributes {
		want[k] = v
	}
	secrets := []string{e.ID.String(), secretAction, secretAuthor, secretMetadata}
	for _, sp := range spans {
		for k, v := range want {
			if got, _ := Attr(sp, k); got != v {
				t.Errorf("span %s: %s = %q, want %q", sp.Name(), k, got, v)
			}
		}
		if sp.Status().Code == codes.Error {
			t.Errorf("span %s has an error status: %s", sp.Name(), sp.Status().Description)
		}
		for _, kv := range sp.Attributes() {
			for _, secret := range secrets {
				if v := kv.Value.Emit(); strings.Contains(v, secret) {
					t.Errorf("span %s: attribute %s holds a parameter value: %q", sp.Name(), kv.Key, v)
				}
			}
		}
		if n := sp.Name(); strings.HasPrefix(n, "sql.rows") || n == "sql.conn.reset_session" {
			t.Errorf("unwanted span %s", n)
		}
	}
}

func testSpanErrors(t *testing.T, a SQLStore) {
	tp, rec := NewRecorder(t)
	s := a.Open(t, storage.Options{TracerProvider: tp})
	bad := sqlEvent(3, "login", time.Now())
	bad.Status = "BOGUS" // breaks the CHECK constraint
	var err error
	spans := UnderSpan(t, tp, rec, "parent", func(ctx context.Context) {
		_, _, err = s.Create(ctx, bad, secretAuthor)
	})
	if err == nil {
		t.Fatal("Create of a BOGUS status succeeded")
	}
	failed := FindSpan(spans, a.Insert.Span, a.Insert.Text)
	if failed == nil {
		t.Fatalf("no span %q of the failed statement with %q: %s", a.Insert.Span, a.Insert.Text, Describe(spans))
	}
	if failed.Status().Code != codes.Error {
		t.Errorf("failed statement's span status = %v, want Error", failed.Status())
	}
	if !hasException(failed, a.Violation) {
		t.Errorf("failed statement's span records no exception event with %q: %+v", a.Violation, failed.Events())
	}

	// A call whose context is already cancelled is not an error of the
	// database: database/sql gives up before the driver, so no span with
	// an error.
	n := len(rec.Ended())
	ctx, parent := tp.Tracer("test").Start(t.Context(), "cancelled")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.List(cctx, domain.Filter{UserID: 3, Limit: 10}); err == nil {
		t.Fatal("List with a cancelled context succeeded")
	}
	parent.End()
	for _, sp := range SQLSpans(rec.Ended()[n:]) {
		if sp.Status().Code == codes.Error {
			t.Errorf("cancelled call: span %s has an error status", sp.Name())
		}
	}
}

func testNotWrapped(t *testing.T, a SQLStore) {
	for _, opts := range []storage.Options{{}, {TracerProvider: nooptrace.NewTracerProvider()}} {
		for _, d := range a.Drivers(a.Open(t, opts)) {
			if got := fmt.Sprintf("%T", d); got != a.Driver {
				t.Errorf("TracerProvider %T: driver = %s, want %s", opts.TracerProvider, got, a.Driver)
			}
		}
	}
	tp, _ := NewRecorder(t)
	for _, d := range a.Drivers(a.Open(t, storage.Options{TracerProvider: tp})) {
		typ := reflect.TypeOf(d)
		if typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if got := fmt.Sprintf("%T", d); got == a.Driver || typ.PkgPath() != "github.com/XSAM/otelsql" {
			t.Errorf("traced: driver = %s (package %s), want otelsql's wrapper", got, typ.PkgPath())
		}
	}
}

func testPoolMetrics(t *testing.T, a SQLStore) {
	const maxOpen = 3
	tel := NewTelemetry(t)
	s := a.Open(t, storage.Options{MeterProvider: tel.MeterProvider(), MaxOpenConns: maxOpen})
	if _, _, err := s.Create(t.Context(), sqlEvent(1, "login", time.Now()), secretAuthor); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	m := Scrape(t, tel)
	pools := a.Pools(maxOpen)
	for pool, bound := range pools {
		checkPool(t, m, pool, bound)
	}
	if n := m.Count("activityd_db_connections_max{"); n != len(pools) {
		t.Errorf("%d pools, want %d", n, len(pools))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := Scrape(t, tel).Count("activityd_db_"); n != 0 {
		t.Errorf("%d pool series after Close, want none", n)
	}
}

func checkPool(t *testing.T, m Metrics, pool string, bound int) {
	t.Helper()
	if v, ok := m.Get(`activityd_db_connections_max{pool="` + pool + `"}`); !ok || v != float64(bound) {
		t.Errorf("%s: activityd_db_connections_max = %v (present %v), want %d", pool, v, ok, bound)
	}
	idle, ok1 := m.Get(`activityd_db_connections{pool="` + pool + `",state="idle"}`)
	inUse, ok2 := m.Get(`activityd_db_connections{pool="` + pool + `",state="in_use"}`)
	if !ok1 || !ok2 || idle+inUse < 1 || idle+inUse > float64(bound) {
		t.Errorf("%s: activityd_db_connections idle=%v in_use=%v (present %v %v), want 1 to %d", pool, idle, inUse, ok1, ok2, bound)
	}
	for _, name := range []string{"activityd_db_connection_waits_total", "activityd_db_connection_wait_duration_seconds_total"} {
		if v, ok := m.Get(name + `{pool="` + pool + `"}`); !ok || v < 0 {
			t.Errorf("%s: %s = %v (present %v)", pool, name, v, ok)
		}
	}
}

// testContractTraced runs storagetest's suite through the tracing wrapper:
// its calls carry no span, so this checks the wrapper changes no
// behaviour.
func testContractTraced(t *testing.T, a SQLStore) {
	tp, _ := NewRecorder(t)
	storagetest.Run(t, func(t *testing.T) ports.Store { return a.Open(t, storage.Options{TracerProvider: tp}) })
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
