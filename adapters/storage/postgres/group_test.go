package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/test/testenv"
)

// groupStore returns a migrated store with one flusher (a pool of 4), so
// that concurrent Creates must share statements, and the span recorder
// of its group commits.
func groupStore(t *testing.T) (*Store, *tracetest.SpanRecorder, string) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	url, _ := testenv.PostgresSchema(t)
	opts := storage.Options{MaxOpenConns: 4, MaxIdleConns: 4, TracerProvider: tp}
	s := testenv.OpenStore(t, func(ctx context.Context) (*Store, error) { return Open(ctx, url, opts) })
	return s, rec, url
}

// createAll creates events concurrently, events[i] by "token:i", each
// under a request span of its own.
func createAll(t *testing.T, s *Store, rec *tracetest.SpanRecorder, events []domain.Event) []createResult {
	t.Helper()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	results := make([]createResult, len(events))
	var wg sync.WaitGroup
	for i := range events {
		wg.Go(func() {
			ctx, span := tracer.Start(t.Context(), "request")
			defer span.End()
			e, created, err := s.Create(ctx, events[i], fmt.Sprintf("token:%d", i))
			results[i] = createResult{e, created, err}
		})
	}
	wg.Wait()
	return results
}

type createResult struct {
	e       domain.Event
	created bool
	err     error
}

// groups returns the largest batch the group commit spans recorded and
// how many of them failed.
func groups(rec *tracetest.SpanRecorder) (largest, failed int) {
	for _, sp := range rec.Ended() {
		if sp.Name() != "postgres.group_commit" {
			continue
		}
		if sp.Status().Code == codes.Error {
			failed++
		}
		for _, kv := range sp.Attributes() {
			if kv.Key == "db.operation.batch.size" {
				largest = max(largest, int(kv.Value.AsInt64()))
			}
		}
	}
	return largest, failed
}

// TestGroupCommit: concurrent Creates share statements, and each request
// still gets exactly its own answer: its event created once with its own
// author, and a repeated id answered with the stored event.
func TestGroupCommit(t *testing.T) {
	s, rec, _ := groupStore(t)
	now := time.Now()
	const n = 200
	events := make([]domain.Event, n)
	for i := range events {
		events[i] = mkEvent(int64(i%7+1), "login", now)
	}
	events[n-1].ID = events[0].ID // the same id twice: one is stored
	results := createAll(t, s, rec, events)

	if largest, failed := groups(rec); largest < 2 || failed > 0 {
		t.Fatalf("200 concurrent creates with one flusher: largest group %d, %d groups failed; want shared statements that succeed", largest, failed)
	}
	createdFirst := 0
	for i, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("create %d: %v", i, r.err)
			continue
		case i == 0 || i == n-1:
			if r.created {
				createdFirst++
			}
			if r.e.ID != events[0].ID {
				t.Errorf("create %d answered with event %s, want %s", i, r.e.ID, events[0].ID)
			}
			continue
		case !r.created || r.e.ID != events[i].ID || r.e.UserID != events[i].UserID:
			t.Errorf("create %d: created %v, event %s user %d; want its own event created", i, r.created, r.e.ID, r.e.UserID)
		}
		hist, err := s.History(t.Context(), events[i].ID)
		if err != nil || len(hist) != 1 || hist[0].By != fmt.Sprintf("token:%d", i) {
			t.Errorf("create %d: history %+v, %v; want one entry by token:%d", i, hist, err, i)
		}
	}
	if createdFirst != 1 {
		t.Errorf("the repeated id was created %d times, want once", createdFirst)
	}
	var rows int
	if err := s.db.GetContext(t.Context(), &rows, `SELECT count(*) FROM events`); err != nil || rows != n-1 {
		t.Errorf("%d rows stored (%v), want %d", rows, err, n-1)
	}
}

// TestGroupCommitRefusedEvent: an event the database refuses fails alone;
// the others of its group are stored.
func TestGroupCommitRefusedEvent(t *testing.T) {
	s, rec, _ := groupStore(t)
	now := time.Now()
	const n = 100
	events := make([]domain.Event, n)
	for i := range events {
		events[i] = mkEvent(1, "login", now)
	}
	const bad = n / 2
	events[bad].Status = "BOGUS" // refused by the CHECK constraint
	results := createAll(t, s, rec, events)
	if _, failed := groups(rec); failed == 0 {
		t.Log("the refused event was not in a group this time; it failed alone")
	}
	for i, r := range results {
		switch {
		case i == bad:
			if r.err == nil || errors.Is(r.err, domain.ErrUnavailable) {
				t.Errorf("the refused event: err %v, want the constraint's error", r.err)
			}
		case r.err != nil || !r.created:
			t.Errorf("create %d: created %v, %v", i, r.created, r.err)
		}
	}
	if _, err := s.Get(t.Context(), events[bad].ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("the refused event was stored: %v", err)
	}
}

// TestGroupCommitClose: Close waits for the Creates already queued, so
// every create that was acknowledged is stored, and one after Close fails.
func TestGroupCommitClose(t *testing.T) {
	s, _, url := groupStore(t)
	now := time.Now()
	const n = 300
	acked := make(chan domain.ID, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			e := mkEvent(int64(i%5+1), "login", now)
			if _, _, err := s.Create(context.Background(), e, "t"); err == nil {
				acked <- e.ID
			} else if !errors.Is(err, storage.ErrClosed) {
				t.Errorf("create: %v", err)
			}
		})
		if i == n/2 {
			go s.Close()
		}
	}
	wg.Wait()
	close(acked)
	if _, _, err := s.Create(context.Background(), mkEvent(1, "login", now), "t"); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Create after Close: %v, want storage.ErrClosed", err)
	}
	other := openStore(t, url, testPool)
	count := 0
	for id := range acked {
		count++
		if _, err := other.Get(t.Context(), id); err != nil {
			t.Errorf("acknowledged event %s: %v", id, err)
		}
	}
	t.Logf("%d of %d creates acknowledged before Close", count, n)
}

func TestFlushersFor(t *testing.T) {
	for _, tc := range []struct{ maxOpen, procs, want int }{
		{20, 2, 2},   // the default pool on 2 cores
		{20, 1, 2},   // one core: still one gathering while one commits
		{20, 8, 5},   // a quarter of the pool at most
		{100, 16, 8}, // and 8 at most
		{4, 4, 1},    // a tiny pool keeps its connections for reads
		{1, 2, 1},
	} {
		if got := flushersFor(tc.maxOpen, tc.procs); got != tc.want {
			t.Errorf("flushersFor(%d, %d) = %d, want %d", tc.maxOpen, tc.procs, got, tc.want)
		}
	}
}
