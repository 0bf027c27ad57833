package storage_test

import (
	"database/sql"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"
	_ "modernc.org/sqlite"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/test/tracing"
)

// The pool metrics as the Prometheus exporter of adapters/telemetry serves
// them: names, labels and values from sql.DB.Stats; gone once unregistered.
func TestObservePool(t *testing.T) {
	tel := tracing.NewTelemetry(t)
	a := openDB(t, 3)
	b := openDB(t, 0)
	conn, err := a.Conn(t.Context()) // one connection in use, none idle
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := b.PingContext(t.Context()); err != nil { // one idle
		t.Fatal(err)
	}
	// c: one caller waited about 20ms for c's only connection.
	c := openDB(t, 1)
	held, err := c.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error)
	go func() { waited <- c.PingContext(t.Context()) }()
	for c.Stats().WaitCount == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	held.Close()
	if err := <-waited; err != nil {
		t.Fatal(err)
	}

	unregister, err := storage.ObservePool(tel.MeterProvider(), map[string]*sql.DB{"a": a, "b": b, "c": c})
	if err != nil {
		t.Fatal(err)
	}
	m := tracing.Scrape(t, tel)
	for series, want := range map[string]float64{
		`activityd_db_connections{pool="a",state="idle"}`:               0,
		`activityd_db_connections{pool="a",state="in_use"}`:             1,
		`activityd_db_connections{pool="b",state="idle"}`:               1,
		`activityd_db_connections{pool="b",state="in_use"}`:             0,
		`activityd_db_connections_max{pool="a"}`:                        3,
		`activityd_db_connections_max{pool="b"}`:                        0,
		`activityd_db_connection_waits_total{pool="a"}`:                 0,
		`activityd_db_connection_wait_duration_seconds_total{pool="b"}`: 0,
	} {
		if got, ok := m.Get(series); !ok || got != want {
			t.Errorf("%s = %v (present: %v), want %v", series, got, ok, want)
		}
	}
	if v, _ := m.Get(`activityd_db_connection_waits_total{pool="c"}`); v != 1 {
		t.Errorf("pool c waits = %v, want 1", v)
	}
	if v, _ := m.Get(`activityd_db_connection_wait_duration_seconds_total{pool="c"}`); v < 0.015 || v > 5 {
		t.Errorf("pool c wait duration = %vs, want about 0.02s", v)
	}
	for _, typ := range []string{
		"# TYPE activityd_db_connections gauge",
		"# TYPE activityd_db_connections_max gauge",
		"# TYPE activityd_db_connection_waits_total counter",
		"# TYPE activityd_db_connection_wait_duration_seconds_total counter",
	} {
		if !m.Has(typ) {
			t.Errorf("no %q in the exposition", typ)
		}
	}

	if err := unregister(); err != nil {
		t.Fatal(err)
	}
	if err := unregister(); err != nil { // idempotent
		t.Fatal(err)
	}
	if n := tracing.Scrape(t, tel).Count("activityd_db_"); n != 0 {
		t.Errorf("%d pool series after unregister, want none", n)
	}
}

func TestObservePoolNil(t *testing.T) {
	unregister, err := storage.ObservePool(nil, map[string]*sql.DB{"a": openDB(t, 1)})
	if err != nil || unregister() != nil {
		t.Fatalf("ObservePool(nil): %v", err)
	}
}

func openDB(t *testing.T, maxOpen int) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(maxOpen)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// Only a real TracerProvider turns SQL tracing on.
func TestOptionsTraced(t *testing.T) {
	tp, _ := tracing.NewRecorder(t)
	for _, tc := range []struct {
		tp   trace.TracerProvider
		want bool
	}{
		{nil, false},
		{nooptrace.NewTracerProvider(), false},
		{tp, true},
	} {
		got, ok := storage.Options{TracerProvider: tc.tp}.Traced()
		if ok != tc.want || (ok && got != tc.tp) || (!ok && got != nil) {
			t.Errorf("Traced() with %T = %v, %v; want %v", tc.tp, got, ok, tc.want)
		}
	}
}
