package storagetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// imported builds an event as activityd import does: a legacy id, an old
// recorded time in its own month, status kept.
func imported(t *testing.T, n int64, user int64, status domain.Status, recorded time.Time) domain.Event {
	t.Helper()
	e := newEvent(t, user, "login", recorded, recorded.Add(-time.Minute), fmt.Sprintf(`{"n":%d}`, n))
	e.ID = domain.LegacyID{System: domain.ActivityLogger, N: n}.ID()
	e.Status = status
	return e
}

// testImport: Import keeps each event's status and times, gives an event
// created in a later status the workflow's steps in its history, is
// idempotent (a second run creates nothing and changes nothing), reads
// back by legacy id, and leaves later transitions working.
func testImport(t *testing.T, s ports.Store) {
	old := domain.Normalize(time.Date(2019, 6, 30, 23, 59, 59, 999999000, time.UTC))
	es := []domain.Event{
		imported(t, 1, 6, domain.StatusPending, old),
		imported(t, 2, 6, domain.StatusInProgress, old.Add(time.Second)), // July: another month
		imported(t, 5, 1<<31+5, domain.StatusDone, old.AddDate(-2, 0, 0)),
		imported(t, 1, 6, domain.StatusDone, old), // the same id again in one batch: stored once
	}
	res, err := s.Import(t.Context(), es, "import:activity-logger")
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if len(res) != len(es) {
		t.Fatalf("Import: %d results for %d events", len(res), len(es))
	}
	for i, want := range []bool{true, true, true, false} {
		if res[i].Created != want {
			t.Errorf("Import result %d: created = %v, want %v", i, res[i].Created, want)
		}
	}
	checkEvent(t, "the repeated id", res[3].Event, es[0])
	for _, e := range es[:3] {
		got, err := s.Get(t.Context(), e.ID)
		if err != nil {
			t.Fatalf("Get(%s): %v", e.ID, err)
		}
		checkEvent(t, "Get of an imported event", got, e)
		want := append([]domain.Transition{{To: domain.StatusPending, At: e.RecordedAt, By: "import:activity-logger"}},
			domain.StepsTo(e.Status, e.UpdatedAt, "import:activity-logger")...)
		checkHistory(t, s, e.ID, want)
	}
	page, err := s.List(t.Context(), domain.Filter{UserID: 6, Limit: 10, Order: domain.Asc})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	checkEvents(t, "List of imported events", page.Events, es[:2])

	// A second run stores nothing and reports what is there.
	again, err := s.Import(t.Context(), es[:3], "import:again")
	if err != nil {
		t.Fatalf("Import again: %v", err)
	}
	for i, r := range again {
		if r.Created {
			t.Errorf("Import again, result %d: created", i)
		}
		checkEvent(t, "Import again", r.Event, es[i])
	}
	checkHistory(t, s, es[2].ID, []domain.Transition{
		{To: domain.StatusPending, At: es[2].RecordedAt, By: "import:activity-logger"},
		{From: domain.StatusPending, To: domain.StatusInProgress, At: es[2].UpdatedAt, By: "import:activity-logger"},
		{From: domain.StatusInProgress, To: domain.StatusDone, At: es[2].UpdatedAt, By: "import:activity-logger"},
	})

	// The workflow goes on from the imported status.
	now := at(time.Hour)
	moved, err := s.SetStatus(t.Context(), es[1].ID, domain.StatusInProgress, domain.StatusDone, now, "token:x")
	if err != nil {
		t.Fatalf("SetStatus of an imported event: %v", err)
	}
	if moved.Status != domain.StatusDone || diffTime(moved.UpdatedAt, now) != "" {
		t.Errorf("SetStatus: %+v", moved)
	}
	checkHistory(t, s, es[1].ID, []domain.Transition{
		{To: domain.StatusPending, At: es[1].RecordedAt, By: "import:activity-logger"},
		{From: domain.StatusPending, To: domain.StatusInProgress, At: es[1].UpdatedAt, By: "import:activity-logger"},
		{From: domain.StatusInProgress, To: domain.StatusDone, At: now, By: "token:x"},
	})

	// Counting sees imported events at their recorded time.
	counts, err := s.CountWindow(t.Context(), old.AddDate(-3, 0, 0), old.AddDate(0, 0, 1))
	if err != nil {
		t.Fatalf("CountWindow: %v", err)
	}
	checkCounts(t, "CountWindow over imported events", counts, []domain.UserCount{
		{UserID: 6, Total: 2, ByAction: map[domain.Action]int64{"login": 2}},
		{UserID: 1<<31 + 5, Total: 1, ByAction: map[domain.Action]int64{"login": 1}},
	})

	if res, err := s.Import(t.Context(), nil, "import:x"); err != nil || len(res) != 0 {
		t.Errorf("Import(nil) = %v, %v", res, err)
	}
}

// testLegacyIDs: numbers are handed out once each, above every reserve,
// and a reserve never moves them back, also under concurrency.
func testLegacyIDs(t *testing.T, s ports.Store) {
	ctx := t.Context()
	first, err := s.NextLegacyID(ctx)
	if err != nil || first < 1 {
		t.Fatalf("NextLegacyID = %d, %v", first, err)
	}
	if err := s.ReserveLegacyIDs(ctx, 1000); err != nil {
		t.Fatalf("ReserveLegacyIDs: %v", err)
	}
	if n, err := s.NextLegacyID(ctx); err != nil || n != 1001 {
		t.Fatalf("after reserving 1000: NextLegacyID = %d, %v; want 1001", n, err)
	}
	if err := s.ReserveLegacyIDs(ctx, 10); err != nil {
		t.Fatalf("ReserveLegacyIDs(10): %v", err)
	}
	if n, err := s.NextLegacyID(ctx); err != nil || n != 1002 {
		t.Fatalf("a lower reserve moved the numbers back: %d, %v; want 1002", n, err)
	}

	const workers, each = 8, 25
	var (
		mu   sync.Mutex
		seen = map[int64]bool{}
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if w == 0 && i%5 == 0 {
					if err := s.ReserveLegacyIDs(ctx, 1010); err != nil {
						t.Errorf("ReserveLegacyIDs: %v", err)
					}
				}
				n, err := s.NextLegacyID(ctx)
				if err != nil {
					t.Errorf("NextLegacyID: %v", err)
					return
				}
				mu.Lock()
				if seen[n] || n <= 1002 {
					t.Errorf("NextLegacyID handed out %d again or below the last", n)
				}
				seen[n] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}
