package asynqjobs

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/activityd/activityd/domain"
)

// recorded returns a TracerProvider whose spans rec records: the
// enqueuing side and the worker each get their own, as two processes
// would, so that only the task's headers can join their spans.
func recorded(t *testing.T) (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return rec, tp
}

// w3c is the propagator both sides use in these tests (not the global
// one, which other tests could change).
var w3c = propagation.TraceContext{}

func attrOf(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// ended returns rec's ended spans named name, for the task id (any task
// when id is "").
func ended(rec *tracetest.SpanRecorder, name, id string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name && (id == "" || attrOf(s, "messaging.message.id") == id) {
			out = append(out, s)
		}
	}
	return out
}

// one returns the only span of spans, or fails t.
func one(t *testing.T, what string, spans []sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
	t.Helper()
	if len(spans) != 1 {
		t.Fatalf("%d %s spans, want 1", len(spans), what)
	}
	return spans[0]
}

// wantChild fails t unless child's parent is parent (same trace, parent
// span id), with the kind given.
func wantChild(t *testing.T, child sdktrace.ReadOnlySpan, parent trace.SpanContext, kind trace.SpanKind) {
	t.Helper()
	if child.SpanContext().TraceID() != parent.TraceID() {
		t.Errorf("%s span in trace %s, want its parent's %s", child.Name(), child.SpanContext().TraceID(), parent.TraceID())
	}
	if child.Parent().SpanID() != parent.SpanID() {
		t.Errorf("%s span's parent %s, want %s", child.Name(), child.Parent().SpanID(), parent.SpanID())
	}
	if child.SpanKind() != kind {
		t.Errorf("%s span kind %v, want %v", child.Name(), child.SpanKind(), kind)
	}
}

// wantAttrs fails t unless span has the attributes (as strings).
func wantAttrs(t *testing.T, span sdktrace.ReadOnlySpan, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := attrOf(span, k); got != v {
			t.Errorf("%s span: %s = %q, want %q", span.Name(), k, got, v)
		}
	}
}

// traceparent is the W3C header value naming sc.
func traceparent(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
}

// untracedPayload is the payload of w's task as built without tracing.
func untracedPayload(t *testing.T, w domain.Window) []byte {
	t.Helper()
	j := newJobs(t, Config{Redis: &redis.UniversalOptions{Addrs: []string{"127.0.0.1:1"}}})
	task, err := j.newTask(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if len(task.Headers()) != 0 {
		t.Fatalf("a task enqueued outside any span has headers %v", task.Headers())
	}
	return task.Payload()
}

// wantTask fails t unless the pending task of w carries traceparent in
// its headers and the payload of an untraced task.
func wantTask(t *testing.T, insp *asynq.Inspector, w domain.Window, traceparent string) {
	t.Helper()
	info, err := insp.GetTaskInfo(Queue, TaskID(w))
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Headers["traceparent"]; got != traceparent {
		t.Errorf("task %s: traceparent %q, want %q (headers %v)", info.ID, got, traceparent, info.Headers)
	}
	if want := untracedPayload(t, w); !bytes.Equal(info.Payload, want) {
		t.Errorf("task %s: payload %s, want the untraced %s", info.ID, info.Payload, want)
	}
}

// TestTraceScheduleToCompute: a scheduler run is a root span, parent of
// the producer span of each window it enqueues; an admin's Enqueue makes
// producer spans under the caller's (HTTP) span; the worker's consumer
// span of each task is the child of its producer span, has the task's
// attributes, and is the span the CountJob computes under.
func TestTraceScheduleToCompute(t *testing.T) {
	o := redisOpts(t)
	insp := inspector(t, o)
	prodRec, prodTP := recorded(t)
	workRec, workTP := recorded(t)
	job := newFakeJob()
	job.plan = func(time.Time) []domain.Window { return []domain.Window{w1} }
	j := newJobs(t, Config{Redis: o, TracerProvider: prodTP, Propagator: w3c})

	ctx := context.Background()
	if !j.runDue(ctx, job) {
		t.Fatal("runDue failed")
	}
	httpCtx, httpSpan := prodTP.Tracer("test").Start(ctx, "POST /v1/counts/compute", trace.WithSpanKind(trace.SpanKindServer))
	if err := j.Enqueue(httpCtx, []domain.Window{w2}); err != nil {
		t.Fatal(err)
	}
	httpSpan.End()

	tick := one(t, "schedule", ended(prodRec, spanSchedule, ""))
	if tick.Parent().IsValid() {
		t.Errorf("the scheduler run's span has a parent %v", tick.Parent())
	}
	wantAttrs(t, tick, map[string]string{"activityd.windows.due": "1"})
	prod1 := one(t, "w1 enqueue", ended(prodRec, spanEnqueue, TaskID(w1)))
	wantChild(t, prod1, tick.SpanContext(), trace.SpanKindProducer)
	prod2 := one(t, "w2 enqueue", ended(prodRec, spanEnqueue, TaskID(w2)))
	wantChild(t, prod2, httpSpan.SpanContext(), trace.SpanKindProducer)
	for _, p := range []sdktrace.ReadOnlySpan{prod1, prod2} {
		wantAttrs(t, p, map[string]string{"activityd.task.outcome": outcomeEnqueued, "messaging.destination.name": Queue,
			"messaging.system": "asynq", "messaging.operation.type": "send"})
	}
	wantAttrs(t, prod1, map[string]string{"activityd.enqueue.reason": "schedule"})
	wantAttrs(t, prod2, map[string]string{"activityd.enqueue.reason": "request"})
	// The tasks carry their producer span, and the payload of untraced
	// tasks.
	wantTask(t, insp, w1, traceparent(prod1.SpanContext()))
	wantTask(t, insp, w2, traceparent(prod2.SpanContext()))

	startWorker(t, WorkerConfig{Redis: o, TracerProvider: workTP, Propagator: w3c}, job)
	eventually(t, "both computations' spans have ended", func() bool { return len(ended(workRec, spanCompute, "")) == 2 })

	for _, tc := range []struct {
		w    domain.Window
		prod sdktrace.ReadOnlySpan
	}{{w1, prod1}, {w2, prod2}} {
		id := TaskID(tc.w)
		cons := one(t, id+" compute", ended(workRec, spanCompute, id))
		wantChild(t, cons, tc.prod.SpanContext(), trace.SpanKindConsumer)
		if !cons.Parent().IsRemote() {
			t.Errorf("%s: the consumer span's parent is not remote", id)
		}
		wantAttrs(t, cons, map[string]string{
			"activityd.window.start":     domain.FormatTime(tc.w.Start),
			"activityd.window.end":       domain.FormatTime(tc.w.End),
			"messaging.message.id":       id,
			"messaging.destination.name": Queue,
			"messaging.system":           "asynq",
			"messaging.operation.type":   "process",
			"activityd.task.retry_count": "0",
			"activityd.window.users":     "1",
		})
		if cons.Status().Code != codes.Unset {
			t.Errorf("%s: consumer span status %v", id, cons.Status())
		}
		job.mu.Lock()
		seen := slices.Clone(job.spans[id])
		job.mu.Unlock()
		if len(seen) != 1 || !seen[0].Equal(cons.SpanContext()) {
			t.Errorf("%s: computed under %v, want the consumer span %v", id, seen, cons.SpanContext())
		}
	}
	if got := domain.FormatTime(w1.Start); got != "2025-10-10T00:00:00Z" {
		t.Errorf("window start as %q, not RFC 3339 in UTC", got)
	}
}

// TestTraceComputeFailure: a failed computation's consumer span has
// status Error and the error recorded; the retry is another consumer span
// under the same producer span, with its retry count. A task without
// headers (a bad payload here) gets a root consumer span.
func TestTraceComputeFailure(t *testing.T) {
	o := redisOpts(t)
	prodRec, prodTP := recorded(t)
	workRec, workTP := recorded(t)
	job := newFakeJob()
	job.fail[TaskID(w1)] = 1
	j := newJobs(t, Config{Redis: o, TracerProvider: prodTP, Propagator: w3c})
	ctx, parent := prodTP.Tracer("test").Start(context.Background(), "POST /v1/counts/compute")
	if err := j.Enqueue(ctx, []domain.Window{w1}); err != nil {
		t.Fatal(err)
	}
	parent.End()
	prod := one(t, "enqueue", ended(prodRec, spanEnqueue, TaskID(w1)))

	rdb := redis.NewUniversalClient(o)
	defer rdb.Close()
	cli := asynq.NewClientFromRedisClient(rdb)
	if _, err := cli.Enqueue(asynq.NewTask(TypeWindow, []byte("nope"), asynq.Queue(Queue), asynq.TaskID("bad"))); err != nil {
		t.Fatal(err)
	}

	startWorker(t, WorkerConfig{Redis: o, TracerProvider: workTP, Propagator: w3c}, job)
	eventually(t, "two attempts at w1 and the bad task have ended", func() bool {
		return len(ended(workRec, spanCompute, TaskID(w1))) == 2 && len(ended(workRec, spanCompute, "bad")) == 1
	})
	attempts := ended(workRec, spanCompute, TaskID(w1))
	slices.SortFunc(attempts, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	failed, retried := attempts[0], attempts[1]
	for _, s := range attempts {
		wantChild(t, s, prod.SpanContext(), trace.SpanKindConsumer)
	}
	wantAttrs(t, failed, map[string]string{"activityd.task.retry_count": "0"})
	wantAttrs(t, retried, map[string]string{"activityd.task.retry_count": "1", "activityd.window.users": "1"})
	if st := failed.Status(); st.Code != codes.Error || st.Description != "storage unavailable" {
		t.Errorf("failed attempt's status %+v, want Error: storage unavailable", st)
	}
	if !recordedError(failed, "storage unavailable") {
		t.Errorf("failed attempt's events %+v: the error is not recorded", failed.Events())
	}
	if attrOf(failed, "activityd.window.users") != "" {
		t.Error("failed attempt has a user count")
	}
	if st := retried.Status(); st.Code != codes.Unset {
		t.Errorf("successful retry's status %+v", st)
	}
	job.mu.Lock()
	seen := slices.Clone(job.spans[TaskID(w1)])
	job.mu.Unlock()
	if len(seen) != 2 || !seen[0].Equal(failed.SpanContext()) || !seen[1].Equal(retried.SpanContext()) {
		t.Errorf("attempts computed under %v, want the consumer spans %v and %v", seen, failed.SpanContext(), retried.SpanContext())
	}

	bad := one(t, "bad task", ended(workRec, spanCompute, "bad"))
	if bad.Parent().IsValid() {
		t.Errorf("a task without headers: consumer span has parent %v", bad.Parent())
	}
	if bad.Status().Code != codes.Error || !recordedError(bad, "bad count:window payload") {
		t.Errorf("bad payload: status %+v, events %+v", bad.Status(), bad.Events())
	}
}

// recordedError reports whether span has an exception event whose message
// contains msg.
func recordedError(span sdktrace.ReadOnlySpan, msg string) bool {
	for _, ev := range span.Events() {
		if ev.Name != "exception" {
			continue
		}
		for _, kv := range ev.Attributes {
			if kv.Key == "exception.message" && bytes.Contains([]byte(kv.Value.AsString()), []byte(msg)) {
				return true
			}
		}
	}
	return false
}

// TestTraceDedup: tracing keeps one task per window. Two schedulers and
// an admin's request enqueue the same window under three producer spans:
// one task, carrying the first one's context, the others' spans saying
// the task exists. Once completed, an admin's request replaces it, with
// its own context.
func TestTraceDedup(t *testing.T) {
	o := redisOpts(t)
	insp := inspector(t, o)
	prodRec, prodTP := recorded(t)
	job := newFakeJob()
	job.plan = func(time.Time) []domain.Window { return []domain.Window{w1} }
	a := newJobs(t, Config{Redis: o, TracerProvider: prodTP, Propagator: w3c})
	b := newJobs(t, Config{Redis: o, TracerProvider: prodTP, Propagator: w3c})
	ctx := context.Background()
	for _, j := range []*Jobs{a, b} {
		if !j.runDue(ctx, job) {
			t.Fatal("runDue failed")
		}
	}
	if err := a.Enqueue(ctx, []domain.Window{w1}); err != nil {
		t.Fatal(err)
	}
	if got := taskIDs(t, insp.ListPendingTasks); !slices.Equal(got, []string{TaskID(w1)}) {
		t.Fatalf("pending %v, want w1's task once", got)
	}
	prods := ended(prodRec, spanEnqueue, TaskID(w1))
	if len(prods) != 3 {
		t.Fatalf("%d producer spans, want 3", len(prods))
	}
	wantAttrs(t, prods[0], map[string]string{"activityd.task.outcome": outcomeEnqueued})
	wantAttrs(t, prods[1], map[string]string{"activityd.task.outcome": outcomeExists})
	wantAttrs(t, prods[2], map[string]string{"activityd.task.outcome": outcomeExists})
	wantTask(t, insp, w1, traceparent(prods[0].SpanContext()))

	workRec, workTP := recorded(t)
	stop := startWorker(t, WorkerConfig{Redis: o, TracerProvider: workTP, Propagator: w3c}, job)
	eventually(t, "the window is completed", func() bool { return len(taskIDs(t, insp.ListCompletedTasks)) == 1 })
	stop()
	if cons := ended(workRec, spanCompute, TaskID(w1)); len(cons) != 1 {
		t.Fatalf("%d consumer spans, want 1", len(cons))
	}

	reqCtx, req := prodTP.Tracer("test").Start(ctx, "POST /v1/counts/compute")
	if err := a.Enqueue(reqCtx, []domain.Window{w1}); err != nil {
		t.Fatal(err)
	}
	req.End()
	prods = ended(prodRec, spanEnqueue, TaskID(w1))
	last := prods[len(prods)-1]
	wantChild(t, last, req.SpanContext(), trace.SpanKindProducer)
	wantAttrs(t, last, map[string]string{"activityd.task.outcome": outcomeReplaced})
	wantTask(t, insp, w1, traceparent(last.SpanContext()))
}

// TestTraceWithoutTracerProvider: with no TracerProvider there are no
// spans, but the caller's trace context still goes into the task (so the
// computation joins the request's trace); with no span, no headers.
func TestTraceWithoutTracerProvider(t *testing.T) {
	o := redisOpts(t)
	insp := inspector(t, o)
	j := newJobs(t, Config{Redis: o, Propagator: w3c})
	rec, tp := recorded(t)
	ctx, span := tp.Tracer("test").Start(context.Background(), "POST /v1/counts/compute")
	if err := j.Enqueue(ctx, []domain.Window{w1}); err != nil {
		t.Fatal(err)
	}
	span.End()
	if err := j.Enqueue(context.Background(), []domain.Window{w2}); err != nil {
		t.Fatal(err)
	}
	if got := len(rec.Ended()); got != 1 {
		t.Fatalf("%d spans ended, want only the caller's", got)
	}
	wantTask(t, insp, w1, traceparent(span.SpanContext()))
	info, err := insp.GetTaskInfo(Queue, TaskID(w2))
	if err != nil || len(info.Headers) != 0 {
		t.Fatalf("a task enqueued outside any span: headers %v, %v", info.Headers, err)
	}
}
