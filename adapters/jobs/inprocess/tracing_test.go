package inprocess_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/activityd/activityd/adapters/jobs/inprocess"
	"github.com/activityd/activityd/domain"
)

// spanJob plans fixed windows and records the span each computation ran
// under; computing fail fails.
type spanJob struct {
	due  []domain.Window
	fail domain.Window
	mu   sync.Mutex
	ran  map[time.Time]trace.SpanContext // by window start
}

func (j *spanJob) Plan(context.Context, time.Time) ([]domain.Window, int, error) {
	due := j.due
	j.due = nil
	return due, 0, nil
}

func (j *spanJob) Compute(ctx context.Context, w domain.Window) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.ran[w.Start] = trace.SpanContextFromContext(ctx)
	if w == j.fail {
		return 0, errors.New("storage unavailable")
	}
	return 3, nil
}

// TestTracing: a scheduled run is a root "count-window schedule" span with
// one "count-window compute" span per window, and each computation runs
// under its span (so the storage's spans nest there); a window an HTTP
// request enqueued is computed under that request's span; a failure is
// recorded.
func TestTracing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(time.Hour)
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		a := domain.Window{Start: h(-8), End: h(-4)}
		b := domain.Window{Start: h(-4), End: h(0)}
		c := domain.Window{Start: h(-12), End: h(-8)}
		job := &spanJob{due: []domain.Window{a, b}, fail: c, ran: map[time.Time]trace.SpanContext{}}
		r := inprocess.New(inprocess.Config{TracerProvider: tp})
		stop := start(t, r, job)
		synctest.Wait()

		reqCtx, req := tp.Tracer("test").Start(context.Background(), "POST /v1/activity-counts/runs")
		if err := r.Enqueue(reqCtx, []domain.Window{c}); err != nil {
			t.Fatal(err)
		}
		req.End()
		synctest.Wait()
		stop()

		byName := map[string][]sdktrace.ReadOnlySpan{}
		for _, s := range rec.Ended() {
			byName[s.Name()] = append(byName[s.Name()], s)
		}
		runs, computes := byName["count-window schedule"], byName["count-window compute"]
		if len(runs) != 1 || len(computes) != 3 {
			t.Fatalf("%d schedule and %d compute spans, want 1 and 3", len(runs), len(computes))
		}
		run := runs[0]
		if run.Parent().IsValid() {
			t.Error("the scheduled run is not a root span")
		}
		for _, s := range computes {
			var start time.Time
			for _, kv := range s.Attributes() {
				if kv.Key == "activityd.window.start" {
					start, _ = time.Parse(time.RFC3339Nano, kv.Value.AsString())
				}
			}
			want := run.SpanContext()
			if start.Equal(c.Start) {
				want = req.SpanContext()
			}
			if s.Parent().SpanID() != want.SpanID() || s.SpanContext().TraceID() != want.TraceID() {
				t.Errorf("compute span of %v: parent %v, want %v", start, s.Parent().SpanID(), want.SpanID())
			}
			if got := job.ran[start]; !got.Equal(s.SpanContext()) {
				t.Errorf("window %v computed under span %v, want its own %v", start, got.SpanID(), s.SpanContext().SpanID())
			}
			failed := start.Equal(c.Start)
			if (s.Status().Code == codes.Error) != failed || (len(s.Events()) > 0) != failed {
				t.Errorf("compute span of %v: status %v, %d events; failed %v", start, s.Status(), len(s.Events()), failed)
			}
		}
	})
}
