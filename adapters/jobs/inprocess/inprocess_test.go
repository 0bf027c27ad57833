package inprocess_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/activityd/activityd/adapters/jobs/inprocess"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/stores"
)

func mustSchedule(t *testing.T, spec string) domain.Schedule {
	t.Helper()
	s, err := cron.ParseStandard(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeJob records what the runner asks of it.
type fakeJob struct {
	mu       sync.Mutex
	plans    []time.Time
	computed []domain.Window
	planErr  error
	block    chan struct{} // non-nil: Compute waits for it (or its ctx)
	started  chan struct{}
	ctxErr   error
	schedule domain.Schedule
	wm       time.Time
}

func (j *fakeJob) Plan(ctx context.Context, now time.Time) ([]domain.Window, int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.plans = append(j.plans, now)
	if j.planErr != nil {
		err := j.planErr
		j.planErr = nil
		return nil, 0, err
	}
	due, skipped := domain.DueWindows(j.schedule, j.wm, now, 42)
	return due, skipped, nil
}

func (j *fakeJob) Compute(ctx context.Context, w domain.Window) (int, error) {
	if j.block != nil {
		j.started <- struct{}{}
		select {
		case <-j.block:
		case <-ctx.Done():
			j.mu.Lock()
			j.ctxErr = ctx.Err()
			j.mu.Unlock()
			return 0, ctx.Err()
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.computed = append(j.computed, w)
	if w.End.After(j.wm) {
		j.wm = w.End
	}
	return 1, nil
}

func (j *fakeJob) windows() []domain.Window {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]domain.Window(nil), j.computed...)
}

// synctest's clock starts at 2000-01-01 00:00 UTC.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func h(n int) time.Time { return epoch.Add(time.Duration(n) * time.Hour) }

func wantWindows(t *testing.T, got []domain.Window, want ...domain.Window) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("computed %v, want %v", got, want)
	}
	for i := range got {
		if !got[i].Start.Equal(want[i].Start) || !got[i].End.Equal(want[i].End) {
			t.Fatalf("computed %v, want %v", got, want)
		}
	}
}

// start runs r over job in the bubble and returns a stop function that
// cancels it and waits for Run to return.
func start(t *testing.T, r *inprocess.Runner, job ports.CountJob) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, job) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	}
}

func TestRunCatchesUpAtStartThenRunsEachTick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(13 * time.Hour) // 13:00; the last run covered up to 04:00
		job := &fakeJob{schedule: mustSchedule(t, "0 */4 * * *"), wm: h(4)}
		r := inprocess.New(inprocess.Config{Schedule: job.schedule, Settle: 10 * time.Second})
		stop := start(t, r, job)
		synctest.Wait()
		wantWindows(t, job.windows(), domain.Window{Start: h(4), End: h(8)}, domain.Window{Start: h(8), End: h(12)})

		time.Sleep(3*time.Hour - time.Second) // 15:59:59: nothing new
		synctest.Wait()
		if n := len(job.windows()); n != 2 {
			t.Fatalf("%d windows before the tick", n)
		}
		time.Sleep(time.Second + 9*time.Second) // 16:00:09, within Settle
		synctest.Wait()
		if n := len(job.windows()); n != 2 {
			t.Fatalf("%d windows before Settle passed", n)
		}
		time.Sleep(time.Second) // 16:00:10
		synctest.Wait()
		wantWindows(t, job.windows()[2:], domain.Window{Start: h(12), End: h(16)})
		time.Sleep(8 * time.Hour) // two more ticks
		synctest.Wait()
		wantWindows(t, job.windows()[3:], domain.Window{Start: h(16), End: h(20)}, domain.Window{Start: h(20), End: h(24)})
		stop()
	})
}

// TestRunStartedWithinSettle: a runner started just after a tick (within
// Settle) still counts that window Settle after the tick, not a whole
// period later.
func TestRunStartedWithinSettle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(4*time.Hour + 5*time.Second)
		c := app.NewCounts(stores.Memory(t), ports.SystemClock, app.CountsConfig{
			Schedule: mustSchedule(t, "0 */4 * * *"), Settle: 10 * time.Second})
		r := inprocess.New(inprocess.Config{Schedule: mustSchedule(t, "0 */4 * * *"), Settle: 10 * time.Second})
		rec := &recordingJob{CountJob: c}
		stop := start(t, r, rec)
		synctest.Wait()
		// A fresh store: the latest window closed Settle ago.
		wantWindows(t, rec.windows(), domain.Window{Start: h(-4), End: h(0)})
		time.Sleep(5 * time.Second)
		synctest.Wait()
		wantWindows(t, rec.windows(), domain.Window{Start: h(-4), End: h(0)}, domain.Window{Start: h(0), End: h(4)})
		stop()
	})
}

// recordingJob wraps a real job and records the windows computed.
type recordingJob struct {
	ports.CountJob
	mu sync.Mutex
	ws []domain.Window
}

func (j *recordingJob) Compute(ctx context.Context, w domain.Window) (int, error) {
	n, err := j.CountJob.Compute(ctx, w)
	if err == nil {
		j.mu.Lock()
		j.ws = append(j.ws, w)
		j.mu.Unlock()
	}
	return n, err
}

func (j *recordingJob) windows() []domain.Window {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]domain.Window(nil), j.ws...)
}

func TestEnqueueComputesPromptlyOldestFirstOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(time.Hour)
		job := &fakeJob{} // no schedule: only enqueued windows run
		r := inprocess.New(inprocess.Config{})
		a := domain.Window{Start: h(-8), End: h(-4)}
		b := domain.Window{Start: h(-4), End: h(0)}
		// Enqueued before Run: waits for it; the duplicate is dropped.
		if err := r.Enqueue(t.Context(), []domain.Window{b, a, b}); err != nil {
			t.Fatal(err)
		}
		stop := start(t, r, job)
		synctest.Wait()
		wantWindows(t, job.windows(), a, b)
		if err := r.Enqueue(t.Context(), []domain.Window{a}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		wantWindows(t, job.windows(), a, b, a)
		stop()

		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := r.Enqueue(ctx, []domain.Window{a}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Enqueue with a cancelled context = %v", err)
		}
	})
}

func TestRunRetriesAfterAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(5 * time.Hour)
		var logs bytes.Buffer
		job := &fakeJob{schedule: mustSchedule(t, "0 */4 * * *"), wm: h(0), planErr: errors.New("storage unavailable")}
		r := inprocess.New(inprocess.Config{Schedule: job.schedule, RetryEvery: time.Minute,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		stop := start(t, r, job)
		synctest.Wait()
		if n := len(job.windows()); n != 0 {
			t.Fatalf("%d windows computed after a failed plan", n)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		wantWindows(t, job.windows(), domain.Window{Start: h(0), End: h(4)})
		stop()
		if !bytes.Contains(logs.Bytes(), []byte("storage unavailable")) {
			t.Errorf("the failure was not logged: %s", logs.String())
		}
	})
}

// TestStopIsGraceful: a window being computed when Run's context ends is
// finished within StopGrace, and Run returns after it.
func TestStopIsGraceful(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(5 * time.Hour)
		job := &fakeJob{schedule: mustSchedule(t, "0 */4 * * *"), wm: h(-4),
			block: make(chan struct{}), started: make(chan struct{}, 4)}
		r := inprocess.New(inprocess.Config{Schedule: job.schedule, StopGrace: time.Minute})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx, job) }()
		<-job.started // computing [-4h, 0)
		cancel()
		time.Sleep(30 * time.Second)
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Run returned while a window was being computed")
		default:
		}
		close(job.block) // the window finishes; the next one is not started
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		wantWindows(t, job.windows(), domain.Window{Start: h(-4), End: h(0)})
	})
}

// TestStopGraceExpires: a computation that outlasts StopGrace is cancelled.
func TestStopGraceExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(5 * time.Hour)
		job := &fakeJob{schedule: mustSchedule(t, "0 */4 * * *"), wm: h(0),
			block: make(chan struct{}), started: make(chan struct{}, 4)}
		r := inprocess.New(inprocess.Config{Schedule: job.schedule, StopGrace: time.Minute})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx, job) }()
		<-job.started
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		job.mu.Lock()
		defer job.mu.Unlock()
		if !errors.Is(job.ctxErr, context.Canceled) || len(job.computed) != 0 {
			t.Fatalf("the computation was not cancelled: %v, %v", job.ctxErr, job.computed)
		}
	})
}

// every4h lists the 4-hourly boundaries from first to last.
func every4h(first, last string) []string {
	f, _ := time.Parse("2006-01-02 15:04", first)
	l, _ := time.Parse("2006-01-02 15:04", last)
	var out []string
	for t := f; !t.After(l); t = t.Add(4 * time.Hour) {
		out = append(out, t.Format("2006-01-02 15:04"))
	}
	return out
}

// TestRobfigSchedules runs the domain policy over real cron specs, parsed
// the way cmd/activityd (and asynq) parse them.
func TestRobfigSchedules(t *testing.T) {
	ts := func(s string) time.Time {
		t, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			panic(err)
		}
		return t
	}
	// 2025-10-10 is a Friday.
	for _, tc := range []struct {
		spec, watermark, now string
		max                  int
		want                 []string // window starts, then the last end
		skipped              int
	}{
		{"* * * * *", "2025-10-10 18:28", "2025-10-10 18:30", 42, []string{"2025-10-10 18:28", "2025-10-10 18:29", "2025-10-10 18:30"}, 0},
		{"0 */4 * * *", "", "2025-10-10 17:59", 42, []string{"2025-10-10 12:00", "2025-10-10 16:00"}, 0},
		{"0 */4 * * *", "2025-10-10 08:00", "2025-10-11 00:00", 42, []string{"2025-10-10 08:00", "2025-10-10 12:00", "2025-10-10 16:00", "2025-10-10 20:00", "2025-10-11 00:00"}, 0},
		// 46 windows since the watermark: the newest 42 are due.
		{"0 */4 * * *", "2025-10-03 00:00", "2025-10-10 17:00", 42, every4h("2025-10-03 16:00", "2025-10-10 16:00"), 4},
		{"@hourly", "2025-10-10 15:00", "2025-10-10 17:30", 42, []string{"2025-10-10 15:00", "2025-10-10 16:00", "2025-10-10 17:00"}, 0},
		{"@daily", "", "2025-10-10 17:30", 42, []string{"2025-10-09 00:00", "2025-10-10 00:00"}, 0},
		{"@midnight", "2025-10-08 00:00", "2025-10-10 00:00", 42, []string{"2025-10-08 00:00", "2025-10-09 00:00", "2025-10-10 00:00"}, 0},
		{"0 0 * * 1-5", "2025-10-10 00:00", "2025-10-13 09:00", 42, []string{"2025-10-10 00:00", "2025-10-13 00:00"}, 0},
		{"0 0 * * MON-FRI", "", "2025-10-12 09:00", 42, []string{"2025-10-09 00:00", "2025-10-10 00:00"}, 0},
		{"@weekly", "", "2025-10-10 09:00", 42, []string{"2025-09-28 00:00", "2025-10-05 00:00"}, 0},
		{"@monthly", "2025-08-01 00:00", "2025-10-10 09:00", 1, []string{"2025-09-01 00:00", "2025-10-01 00:00"}, 1},
		{"30 2 * * *", "2025-10-09 01:00", "2025-10-10 09:00", 42, []string{"2025-10-09 01:00", "2025-10-09 02:30", "2025-10-10 02:30"}, 0}, // off-tick watermark
		{"0 0 30 2 *", "", "2025-10-10 09:00", 42, nil, 0},                                                                                  // February 30th: never
		{"0 0 30 2 *", "2025-10-01 00:00", "2025-10-10 09:00", 42, nil, 0},                                                                  // never, with a watermark
	} {
		t.Run(tc.spec+"/"+tc.watermark, func(t *testing.T) {
			var wm time.Time
			if tc.watermark != "" {
				wm = ts(tc.watermark)
			}
			got, skipped := domain.DueWindows(mustSchedule(t, tc.spec), wm, ts(tc.now), tc.max)
			var want []domain.Window
			for i := 1; i < len(tc.want); i++ {
				want = append(want, domain.Window{Start: ts(tc.want[i-1]), End: ts(tc.want[i])})
			}
			if skipped != tc.skipped || len(got) != len(want) {
				t.Fatalf("DueWindows = %v (skipped %d), want %v (skipped %d)", got, skipped, want, tc.skipped)
			}
			for i := range got {
				if !got[i].Start.Equal(want[i].Start) || !got[i].End.Equal(want[i].End) {
					t.Fatalf("DueWindows = %v, want %v", got, want)
				}
			}
		})
	}
}
