package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	memcache "github.com/activityd/activityd/adapters/cache/memory"
	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/testenv"
)

// fourHourly is the default schedule (0 */4 * * *) without a cron parser.
type fourHourly struct{}

func (fourHourly) Next(t time.Time) time.Time {
	return t.UTC().Truncate(4 * time.Hour).Add(4 * time.Hour)
}

// day0 is midnight of the counting tests' first day; hr(n) is n hours later.
var day0 = time.Date(2025, 10, 10, 0, 0, 0, 0, time.UTC)

func hr(n float64) time.Time { return day0.Add(time.Duration(n * float64(time.Hour))) }

type countsFixture struct {
	store  *memory.Store
	clock  *testenv.Clock
	counts *app.Counts
}

func newCountsFixture(t *testing.T, cfg app.CountsConfig) *countsFixture {
	t.Helper()
	st := memory.New()
	t.Cleanup(func() { _ = st.Close() })
	clk := testenv.NewClock(day0)
	if cfg.Schedule == nil {
		cfg.Schedule = fourHourly{}
	}
	return &countsFixture{store: st, clock: clk, counts: app.NewCounts(st, clk, cfg)}
}

// recordAt stores an event recorded at at, as the events use case would
// have at that time.
func (fx *countsFixture) recordAt(t *testing.T, user int64, action string, at time.Time) {
	t.Helper()
	at = domain.Normalize(at)
	e := domain.Event{ID: domain.NewID(at), UserID: user, Action: domain.Action(action), Status: domain.StatusPending,
		OccurredAt: at, RecordedAt: at, UpdatedAt: at, Metadata: []byte("{}")}
	if _, _, err := fx.store.Create(context.Background(), e, "test"); err != nil {
		t.Fatal(err)
	}
}

// totals returns user → window start hour → total, over every computed
// window.
func (fx *countsFixture) totals(t *testing.T) map[string]int64 {
	t.Helper()
	page, err := fx.store.ListCounts(context.Background(), domain.CountFilter{Order: domain.Asc, Limit: domain.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, c := range page.Counts {
		out[fmt.Sprintf("u%d@%gh", c.UserID, c.Start.Sub(day0).Hours())] = c.Total
	}
	return out
}

func wantTotals(t *testing.T, got map[string]int64, want map[string]int64) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("counts = %v\nwant     %v", got, want)
	}
}

func wantRun(t *testing.T, got []domain.Window, err error, hours ...float64) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	var want []domain.Window
	for i := 1; i < len(hours); i++ {
		want = append(want, domain.Window{Start: hr(hours[i-1]), End: hr(hours[i])})
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("computed %v, want %v", got, want)
	}
}

// TestCountingBeforeStartAndAfterDowntime: the predecessor counted
// "created_at BETWEEN last_run AND now" with last_run held in memory, so
// events recorded before it started, or while it was down, were never
// counted. Here the windows are aligned to the schedule and the watermark
// is in storage.
func TestCountingBeforeStartAndAfterDowntime(t *testing.T) {
	fx := newCountsFixture(t, app.CountsConfig{})
	ctx := context.Background()
	// Before the first start (at 05:00): events of window [00:00, 04:00),
	// and of the window still open.
	fx.recordAt(t, 1, "login", hr(0.5))
	fx.recordAt(t, 2, "viewed", hr(3.9))
	fx.recordAt(t, 1, "logout", hr(4.5))
	ran, skipped, err := fx.counts.RunDue(ctx, hr(5))
	wantRun(t, ran, err, 0, 4)
	if skipped != 0 {
		t.Fatalf("skipped %d", skipped)
	}
	wantTotals(t, fx.totals(t), map[string]int64{"u1@0h": 1, "u2@0h": 1})

	// The service is down from 05:00 to 13:00; events keep arriving
	// (another replica, a batch import) and are counted on restart.
	fx.recordAt(t, 1, "login", hr(6))
	fx.recordAt(t, 3, "login", hr(9))
	fx.recordAt(t, 3, "viewed", hr(11.99))
	ran, _, err = fx.counts.RunDue(ctx, hr(13))
	wantRun(t, ran, err, 4, 8, 12)
	wantTotals(t, fx.totals(t), map[string]int64{"u1@0h": 1, "u2@0h": 1, "u1@4h": 2, "u3@8h": 2})

	// Running again at once finds nothing due and changes nothing.
	ran, _, err = fx.counts.RunDue(ctx, hr(13))
	wantRun(t, ran, err)
	wantTotals(t, fx.totals(t), map[string]int64{"u1@0h": 1, "u2@0h": 1, "u1@4h": 2, "u3@8h": 2})
}

// TestCountingBoundaries: the predecessor's BETWEEN counted an event on a
// boundary in both runs. Windows are half-open: exactly one window holds
// it, and the windows' sum is the number of events.
func TestCountingBoundaries(t *testing.T) {
	fx := newCountsFixture(t, app.CountsConfig{})
	for _, h := range []float64{0, 4, 4, 8 - 1.0/3600/1e6, 8, 12 - 1.0/3600/1e6} {
		fx.recordAt(t, 7, "login", hr(h))
	}
	fx.recordAt(t, 7, "login", hr(12)) // the open window: not yet counted
	if _, err := fx.store.ComputeWindow(context.Background(), domain.Window{Start: hr(-4), End: hr(0)}, hr(0)); err != nil {
		t.Fatal(err)
	}
	ran, _, err := fx.counts.RunDue(context.Background(), hr(12))
	wantRun(t, ran, err, 0, 4, 8, 12)
	wantTotals(t, fx.totals(t), map[string]int64{"u7@0h": 1, "u7@4h": 3, "u7@8h": 2})
}

// TestConcurrentRunsDoNotDoubleCount: several instances each ran the
// predecessor's job and each added its own count. Runs here may overlap
// (replicas, a POST during a tick): each window is replaced, not added to.
func TestConcurrentRunsDoNotDoubleCount(t *testing.T) {
	fx := newCountsFixture(t, app.CountsConfig{})
	if _, err := fx.store.ComputeWindow(context.Background(), domain.Window{Start: hr(-4), End: hr(0)}, hr(0)); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		fx.recordAt(t, int64(1+i%3), "viewed", hr(float64(i)/10)) // 00:00 to 09:54
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, _, err := fx.counts.RunDue(context.Background(), hr(12)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	wantTotals(t, fx.totals(t), map[string]int64{
		"u1@0h": 14, "u2@0h": 13, "u3@0h": 13,
		"u1@4h": 13, "u2@4h": 14, "u3@4h": 13,
		"u1@8h": 7, "u2@8h": 6, "u3@8h": 7,
	})
	if wm, _ := fx.store.Watermark(context.Background()); !wm.End.Equal(hr(12)) {
		t.Fatalf("watermark %v", wm)
	}
}

// TestCatchUpBound: after a long outage, the newest MaxCatchup windows are
// computed, oldest first, and the skipped ones reported.
func TestCatchUpBound(t *testing.T) {
	fx := newCountsFixture(t, app.CountsConfig{MaxCatchup: 3})
	ctx := context.Background()
	if _, err := fx.store.ComputeWindow(ctx, domain.Window{Start: hr(-4), End: hr(0)}, hr(0)); err != nil {
		t.Fatal(err)
	}
	fx.recordAt(t, 1, "login", hr(1))  // in a skipped window
	fx.recordAt(t, 1, "login", hr(21)) // in a caught-up one
	ran, skipped, err := fx.counts.RunDue(ctx, hr(24.5))
	wantRun(t, ran, err, 12, 16, 20, 24)
	if skipped != 3 {
		t.Fatalf("skipped %d, want 3", skipped)
	}
	wantTotals(t, fx.totals(t), map[string]int64{"u1@20h": 1})
}

// TestPlanWithSettleAndFakeClock: a window is due Settle after it closes.
func TestPlanWithSettleAndFakeClock(t *testing.T) {
	fx := newCountsFixture(t, app.CountsConfig{Settle: 10 * time.Second})
	ctx := context.Background()
	if _, err := fx.store.ComputeWindow(ctx, domain.Window{Start: hr(0), End: hr(4)}, hr(4)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		now  time.Time
		want int
	}{
		{hr(8).Add(-time.Second), 0},
		{hr(8), 0},
		{hr(8).Add(9 * time.Second), 0},
		{hr(8).Add(10 * time.Second), 1},
		{hr(12).Add(10 * time.Second), 2},
	} {
		due, _, err := fx.counts.Plan(ctx, tc.now)
		if err != nil || len(due) != tc.want {
			t.Errorf("Plan(%s) = %v, %v; want %d windows", tc.now.Format(time.TimeOnly), due, err, tc.want)
		}
	}
}

func TestComputeRejectsEmptyWindows(t *testing.T) {
	fx := newCountsFixture(t, app.CountsConfig{})
	_, err := fx.counts.Compute(context.Background(), domain.Window{Start: hr(4), End: hr(4)})
	wantErr(t, err, domain.ErrInvalid)
}

// fakeJobs records what Trigger enqueues.
type fakeJobs struct {
	mu sync.Mutex
	ws []domain.Window
}

func (j *fakeJobs) Run(ctx context.Context, _ ports.CountJob) error { <-ctx.Done(); return nil }
func (j *fakeJobs) Enqueue(_ context.Context, ws []domain.Window) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.ws = append(j.ws, ws...)
	return nil
}

func TestTrigger(t *testing.T) {
	ctx := context.Background()
	t.Run("admin only", func(t *testing.T) {
		fx := newCountsFixture(t, app.CountsConfig{})
		for _, p := range []domain.Principal{alice, reader, writer} {
			_, err := fx.counts.Trigger(ctx, p)
			wantErr(t, err, domain.ErrForbidden)
		}
	})
	t.Run("computes in the call without jobs; recomputes the last window when none is due", func(t *testing.T) {
		fx := newCountsFixture(t, app.CountsConfig{})
		fx.clock.Set(hr(9))
		fx.recordAt(t, 1, "login", hr(5))
		run, err := fx.counts.Trigger(ctx, admin)
		wantRun(t, run.Windows, err, 4, 8)
		wantTotals(t, fx.totals(t), map[string]int64{"u1@4h": 1})
		fx.recordAt(t, 1, "login", hr(6)) // committed late into the closed window
		run, err = fx.counts.Trigger(ctx, admin)
		wantRun(t, run.Windows, err, 4, 8)
		wantTotals(t, fx.totals(t), map[string]int64{"u1@4h": 2})
	})
	t.Run("nothing ever due", func(t *testing.T) {
		fx := newCountsFixture(t, app.CountsConfig{Schedule: neverSchedule{}})
		run, err := fx.counts.Trigger(ctx, admin)
		if err != nil || len(run.Windows) != 0 || run.Windows == nil {
			t.Fatalf("Trigger = %+v, %v", run, err)
		}
	})
	t.Run("enqueues with jobs", func(t *testing.T) {
		jobs := &fakeJobs{}
		fx := newCountsFixture(t, app.CountsConfig{Jobs: jobs, MaxCatchup: 2})
		if _, err := fx.store.ComputeWindow(ctx, domain.Window{Start: hr(-4), End: hr(0)}, hr(0)); err != nil {
			t.Fatal(err)
		}
		fx.clock.Set(hr(13))
		run, err := fx.counts.Trigger(ctx, admin)
		wantRun(t, run.Windows, err, 4, 8, 12)
		if run.Skipped != 1 || len(jobs.ws) != 2 {
			t.Fatalf("run %+v, enqueued %v", run, jobs.ws)
		}
		if got := fx.totals(t); len(got) != 0 {
			t.Fatalf("computed in the call: %v", got)
		}
	})
}

type neverSchedule struct{}

func (neverSchedule) Next(time.Time) time.Time { return time.Time{} }

func TestCountsListOwnership(t *testing.T) {
	fx := newCountsFixture(t, app.CountsConfig{})
	ctx := context.Background()
	fx.recordAt(t, 1, "login", hr(1))
	fx.recordAt(t, 2, "login", hr(2))
	if _, err := fx.counts.Compute(ctx, domain.Window{Start: hr(0), End: hr(4)}); err != nil {
		t.Fatal(err)
	}
	users := func(p domain.Principal, q domain.CountQuery) ([]int64, error) {
		l, err := fx.counts.List(ctx, p, q, app.CountListOptions{}, "")
		var out []int64
		for _, c := range l.Page.Counts {
			out = append(out, c.UserID)
		}
		return out, err
	}
	if got, err := users(admin, domain.CountQuery{}); err != nil || fmt.Sprint(got) != "[2 1]" {
		t.Errorf("admin: %v, %v", got, err)
	}
	if got, err := users(admin, domain.CountQuery{UserID: "2"}); err != nil || fmt.Sprint(got) != "[2]" {
		t.Errorf("admin, user 2: %v, %v", got, err)
	}
	if got, err := users(alice, domain.CountQuery{}); err != nil || fmt.Sprint(got) != "[1]" {
		t.Errorf("alice: %v, %v", got, err)
	}
	if got, err := users(reader, domain.CountQuery{UserID: "1"}); err != nil || fmt.Sprint(got) != "[1]" {
		t.Errorf("reader: %v, %v", got, err)
	}
	_, err := users(alice, domain.CountQuery{UserID: "2"})
	wantErr(t, err, domain.ErrForbidden)
	_, err = users(writer, domain.CountQuery{})
	wantErr(t, err, domain.ErrForbidden)
	_, err = users(alice, domain.CountQuery{Limit: "0", From: "x"})
	wantFields(t, err, "from", "limit")
}

// TestCountsCache: count reads are cached like event lists, and every
// computed window invalidates them.
func TestCountsCache(t *testing.T) {
	cache := memcache.New(memcache.Options{})
	fx := newCountsFixture(t, app.CountsConfig{Cache: app.CacheConfig{Cache: cache, TTL: time.Minute}})
	ctx := context.Background()
	// A "totals" view: the list of each count's total.
	read := func(p domain.Principal) (string, app.CacheResult) {
		t.Helper()
		l, err := fx.counts.List(ctx, p, domain.CountQuery{}, app.CountListOptions{}, "totals")
		if err != nil {
			t.Fatal(err)
		}
		if l.Body != nil {
			return string(l.Body), l.Cache
		}
		var out []int64
		for _, c := range l.Page.Counts {
			out = append(out, c.Total)
		}
		b, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		l.Keep(b)
		return string(b), l.Cache
	}
	fx.recordAt(t, 1, "login", hr(1))
	if _, err := fx.counts.Compute(ctx, domain.Window{Start: hr(0), End: hr(4)}); err != nil {
		t.Fatal(err)
	}
	if b, res := read(alice); b != "[1]" || res != app.CacheMiss {
		t.Fatalf("first read %s %s", b, res)
	}
	if b, res := read(alice); b != "[1]" || res != app.CacheHit {
		t.Fatalf("second read %s %s", b, res)
	}
	// Bob's read is keyed by his own user: no cached answer crosses users.
	if b, res := read(bob); b != "null" || res != app.CacheMiss {
		t.Fatalf("bob's read %s %s", b, res)
	}
	fx.recordAt(t, 1, "login", hr(2))
	if _, err := fx.counts.Compute(ctx, domain.Window{Start: hr(0), End: hr(4)}); err != nil {
		t.Fatal(err)
	}
	if b, res := read(alice); b != "[2]" || res != app.CacheMiss {
		t.Fatalf("read after a recompute %s %s", b, res)
	}
}

// failingCounts fails every call, as an unreachable store does.
type failingCounts struct{ ports.Counts }

func (failingCounts) Watermark(context.Context) (domain.Window, error) {
	return domain.Window{}, domain.ErrUnavailable
}
func (failingCounts) ComputeWindow(context.Context, domain.Window, time.Time) (int, error) {
	return 0, domain.ErrUnavailable
}
func (failingCounts) ListCounts(context.Context, domain.CountFilter) (domain.CountPage, error) {
	return domain.CountPage{}, domain.ErrUnavailable
}

func TestCountsUnavailable(t *testing.T) {
	c := app.NewCounts(failingCounts{}, ports.SystemClock, app.CountsConfig{Schedule: fourHourly{}})
	ctx := context.Background()
	_, _, err := c.RunDue(ctx, time.Now())
	wantErr(t, err, domain.ErrUnavailable)
	_, err = c.Compute(ctx, domain.Window{Start: hr(0), End: hr(4)})
	wantErr(t, err, domain.ErrUnavailable)
	_, err = c.List(ctx, admin, domain.CountQuery{}, app.CountListOptions{}, "")
	wantErr(t, err, domain.ErrUnavailable)
	_, err = c.Trigger(ctx, admin)
	wantErr(t, err, domain.ErrUnavailable)
	if errors.Is(err, domain.ErrInvalid) {
		t.Fatal("unavailable reported as invalid")
	}
}
