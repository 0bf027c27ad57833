package rediscache

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/cachetest"
)

// traced returns a cache on TEST_REDIS_URL whose commands are traced into
// a recorder, and a tracer of the same provider to start parent spans.
func traced(t *testing.T) (*Cache, *tracetest.SpanRecorder, trace.Tracer) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return open(t, Options{TracerProvider: tp}), rec, tp.Tracer("test")
}

// attr returns a span's attribute as a string ("" if absent).
func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

func names[S sdktrace.ReadOnlySpan](spans []S) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

// TestTracingChildSpans: every cache call under a span yields client spans
// that are its direct children (one per command or pipeline, none for
// setting up connections), with db.system redis and the command as the
// name, and no statement; a miss is not an error.
func TestTracingChildSpans(t *testing.T) {
	c, rec, tracer := traced(t)
	ctx, parent := tracer.Start(t.Context(), "GET /v1/counts")
	if err := c.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.Get(ctx, "k"); err != nil || !ok {
		t.Fatalf("Get: %v, %v", ok, err)
	}
	if _, ok, err := c.Get(ctx, "absent"); err != nil || ok {
		t.Fatalf("Get of a missing key: %v, %v", ok, err)
	}
	if err := c.Bump(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Generations(ctx, "g", "h"); err != nil {
		t.Fatal(err)
	}
	parent.End()

	psc := parent.SpanContext()
	spans := rec.Ended()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	var children []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanContext().SpanID() == psc.SpanID() {
			continue
		}
		if s.SpanContext().TraceID() != psc.TraceID() {
			t.Errorf("span %q is in trace %s, not the parent's %s", s.Name(), s.SpanContext().TraceID(), psc.TraceID())
		}
		if _, ok := byID[s.Parent().SpanID()]; !ok {
			t.Errorf("span %q has parent %s, no span of the trace", s.Name(), s.Parent().SpanID())
		}
		if s.SpanKind() != trace.SpanKindClient {
			t.Errorf("span %q has kind %v, want client", s.Name(), s.SpanKind())
		}
		if got := attr(s, "db.system"); got != "redis" {
			t.Errorf("span %q: db.system %q, want redis", s.Name(), got)
		}
		if s.Status().Code == codes.Error {
			t.Errorf("span %q is an error: %s", s.Name(), s.Status().Description)
		}
		if attr(s, "db.statement") != "" {
			t.Errorf("span %q records the statement (values and keys): %q", s.Name(), attr(s, "db.statement"))
		}
		if s.Parent().SpanID() == psc.SpanID() {
			children = append(children, s)
		}
	}
	if got := names(spans); len(got) != len(children)+1 {
		t.Errorf("spans %q: want only the parent and its children (no connection set-up)", got)
	}
	got := names(children)
	t.Logf("the parent's children: %q; all spans: %q", got, names(spans))
	for _, want := range []string{"set", "get", "redis.pipeline eval", "redis.pipeline get"} {
		if !slices.Contains(got, want) {
			t.Errorf("no %q span under the parent: %q", want, got)
		}
	}
	if n := len(slices.DeleteFunc(slices.Clone(got), func(n string) bool { return n != "get" })); n != 2 {
		t.Errorf("%d get spans under the parent, want 2 (a hit and a miss)", n)
	}
}

// TestTracingNoRootSpans: commands outside any span are not traced.
func TestTracingNoRootSpans(t *testing.T) {
	c, rec, _ := traced(t)
	for name, err := range calls(c) {
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if spans := rec.Ended(); len(spans) != 0 {
		t.Fatalf("calls outside a span made spans %q", names(spans))
	}
	if spans := rec.Started(); len(spans) != 0 {
		t.Fatalf("calls outside a span started spans %q", names(spans))
	}
}

// TestTracingErrors: a failing command's span records the error and has
// status Error: a WRONGTYPE reply, and a call on a closed client.
func TestTracingErrors(t *testing.T) {
	c, rec, tracer := traced(t)
	// A list where Get expects a string (untraced: no parent span).
	if err := c.Client().RPush(t.Context(), c.valueKey("list"), "x").Err(); err != nil {
		t.Fatal(err)
	}
	if len(rec.Ended()) != 0 {
		t.Fatalf("spans before the test: %q", names(rec.Ended()))
	}
	ctx, parent := tracer.Start(t.Context(), "parent")
	_, _, getErr := c.Get(ctx, "list")
	if getErr == nil {
		t.Fatal("Get of a list: no error")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	setErr := c.Set(ctx, "k", []byte("v"), time.Minute)
	if setErr == nil {
		t.Fatal("Set on a closed client: no error")
	}
	parent.End()

	for _, tc := range []struct {
		name string
		err  error
	}{{"get", getErr}, {"set", setErr}} {
		var s sdktrace.ReadOnlySpan
		for _, e := range rec.Ended() {
			if e.Name() == tc.name && e.Parent().SpanID() == parent.SpanContext().SpanID() {
				s = e
			}
		}
		if s == nil {
			t.Errorf("no %q span under the parent: %q", tc.name, names(rec.Ended()))
			continue
		}
		if s.Status().Code != codes.Error {
			t.Errorf("%s span status %v, want Error (call error %v)", tc.name, s.Status(), tc.err)
		}
		var recorded string
		for _, ev := range s.Events() {
			if ev.Name == "exception" {
				for _, kv := range ev.Attributes {
					if kv.Key == "exception.message" {
						recorded = kv.Value.AsString()
					}
				}
			}
		}
		if recorded == "" {
			t.Errorf("%s span: no exception event (call error %v)", tc.name, tc.err)
		}
		t.Logf("%s span: status %q, exception %q", tc.name, s.Status().Description, recorded)
	}
}

// TestNoTracerProvider: without a TracerProvider the client has no hook,
// not even one reporting to the global provider.
func TestNoTracerProvider(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	c := open(t, Options{})
	ctx, parent := tp.Tracer("test").Start(t.Context(), "parent")
	if err := c.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	parent.End()
	if got := names(rec.Ended()); !slices.Equal(got, []string{"parent"}) {
		t.Fatalf("spans %q, want only the parent", got)
	}
}

// TestContractTraced: tracing changes nothing the cache does; every call
// runs under a span of its own, so every command is traced.
func TestContractTraced(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) ports.Cache {
		c, rec, tracer := traced(t)
		t.Cleanup(func() {
			if len(rec.Ended()) == 0 && !t.Failed() {
				t.Error("no span recorded")
			}
		})
		return underSpan{c, tracer}
	})
}

// underSpan runs each call of a cache under a span of its own.
type underSpan struct {
	c      *Cache
	tracer trace.Tracer
}

func (u underSpan) Get(ctx context.Context, key string) ([]byte, bool, error) {
	ctx, span := u.tracer.Start(ctx, "Get")
	defer span.End()
	return u.c.Get(ctx, key)
}

func (u underSpan) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	ctx, span := u.tracer.Start(ctx, "Set")
	defer span.End()
	return u.c.Set(ctx, key, value, ttl)
}

func (u underSpan) Generations(ctx context.Context, keys ...string) ([]int64, error) {
	ctx, span := u.tracer.Start(ctx, "Generations")
	defer span.End()
	return u.c.Generations(ctx, keys...)
}

func (u underSpan) Bump(ctx context.Context, keys ...string) error {
	ctx, span := u.tracer.Start(ctx, "Bump")
	defer span.End()
	return u.c.Bump(ctx, keys...)
}

func (u underSpan) GetLatest(ctx context.Context, counters []string, prefix, suffix string) ([]int64, []byte, bool, error) {
	ctx, span := u.tracer.Start(ctx, "GetLatest")
	defer span.End()
	return u.c.GetLatest(ctx, counters, prefix, suffix)
}
