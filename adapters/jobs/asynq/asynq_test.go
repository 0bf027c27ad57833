package asynqjobs

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/test/testenv"
)

// asynq keeps its keys under asynq:{queue}: with no prefix to set, every
// test gets a private redis-server.
func redisOpts(t *testing.T) *redis.UniversalOptions {
	t.Helper()
	addr, _, _ := testenv.StartRedis(t)
	return &redis.UniversalOptions{Addrs: []string{addr}}
}

func inspector(t *testing.T, o *redis.UniversalOptions) *asynq.Inspector {
	t.Helper()
	rdb := redis.NewUniversalClient(o)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	t.Cleanup(func() { insp.Close(); rdb.Close() })
	return insp
}

func newJobs(t *testing.T, cfg Config) *Jobs {
	t.Helper()
	j, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func startWorker(t *testing.T, cfg WorkerConfig, job *fakeJob) (stop func()) {
	t.Helper()
	cfg.PollInterval = 50 * time.Millisecond
	cfg.RetryBase, cfg.RetryMax = cmpOr(cfg.RetryBase, 20*time.Millisecond), cmpOr(cfg.RetryMax, 50*time.Millisecond)
	w, err := NewWorker(cfg, job)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("worker: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("the worker did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// fakeJob plans fixed windows (or the schedule's latest closed window)
// and records what it computes; fail says how many times a window's
// computation fails before it succeeds, block makes computing wait for
// the context to end.
type fakeJob struct {
	mu       sync.Mutex
	plan     func(now time.Time) []domain.Window
	planned  int
	computed map[string]int // by TaskID: successful computations
	attempts map[string]int
	fail     map[string]int
	block    bool
	started  chan struct{} // receives when a blocking computation starts
	// spans are the span contexts the computations ran under, by TaskID,
	// one per attempt.
	spans map[string][]trace.SpanContext
}

func newFakeJob() *fakeJob {
	return &fakeJob{computed: map[string]int{}, attempts: map[string]int{}, fail: map[string]int{}, started: make(chan struct{}, 10)}
}

func (f *fakeJob) Plan(_ context.Context, now time.Time) ([]domain.Window, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.planned++
	if f.plan == nil {
		return nil, 0, nil
	}
	return f.plan(now), 0, nil
}

func (f *fakeJob) Compute(ctx context.Context, w domain.Window) (int, error) {
	id := TaskID(w)
	f.mu.Lock()
	f.attempts[id]++
	if f.spans == nil {
		f.spans = map[string][]trace.SpanContext{}
	}
	f.spans[id] = append(f.spans[id], trace.SpanContextFromContext(ctx))
	failing := f.attempts[id] <= f.fail[id]
	block := f.block
	f.mu.Unlock()
	if block {
		f.started <- struct{}{}
		<-ctx.Done()
		return 0, ctx.Err()
	}
	if failing {
		return 0, errors.New("storage unavailable")
	}
	f.mu.Lock()
	f.computed[id]++
	f.mu.Unlock()
	return 1, nil
}

func (f *fakeJob) counts() (computed, attempts map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps(f.computed), maps(f.attempts)
}

func maps(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	t0 = time.Date(2025, 10, 10, 0, 0, 0, 0, time.UTC)
	w1 = domain.Window{Start: t0, End: t0.Add(4 * time.Hour)}
	w2 = domain.Window{Start: t0.Add(4 * time.Hour), End: t0.Add(8 * time.Hour)}
)

func taskIDs(t *testing.T, list func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error)) []string {
	t.Helper()
	infos, err := list(Queue)
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		t.Fatal(err)
	}
	var ids []string
	for _, i := range infos {
		ids = append(ids, i.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestTaskID(t *testing.T) {
	if got, want := TaskID(w1), "count-window:2025-10-10T00:00:00Z/2025-10-10T04:00:00Z"; got != want {
		t.Fatalf("TaskID = %q, want %q", got, want)
	}
	local := domain.Window{Start: w1.Start.In(time.FixedZone("X", 3600)), End: w1.End.In(time.FixedZone("Y", -7200))}
	if TaskID(local) != TaskID(w1) {
		t.Fatalf("the id depends on the time zone: %q", TaskID(local))
	}
	other := domain.Window{Start: w1.Start, End: w1.End.Add(time.Hour)}
	if TaskID(other) == TaskID(w1) {
		t.Fatal("windows with the same start and another end share an id")
	}
	// New dials nothing.
	j := newJobs(t, Config{Redis: &redis.UniversalOptions{Addrs: []string{"127.0.0.1:1"}}, MaxRetry: 3, Retention: time.Hour})
	task, err := j.newTask(context.Background(), w1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeWindow(task.Payload())
	if err != nil || !got.Start.Equal(w1.Start) || !got.End.Equal(w1.End) {
		t.Fatalf("payload %s decodes to %v, %v", task.Payload(), got, err)
	}
	for _, bad := range []string{``, `nope`, `{}`, `{"start":"2025-10-10T04:00:00Z","end":"2025-10-10T00:00:00Z"}`} {
		if _, err := decodeWindow([]byte(bad)); err == nil {
			t.Errorf("payload %q decoded", bad)
		}
	}
	if _, err := decodeWindow([]byte(`{"start":"2025-10-10T00:00:00Z","end":"2025-10-10T04:00:00Z","trace":{"a":"b"}}`)); err != nil {
		t.Errorf("an unknown field is refused: %v", err)
	}
}

// TestSchedulersEnqueueOnce: two schedulers planning the same windows
// enqueue each once, also again after a worker completed them.
func TestSchedulersEnqueueOnce(t *testing.T) {
	o := redisOpts(t)
	insp := inspector(t, o)
	job := newFakeJob()
	job.plan = func(time.Time) []domain.Window { return []domain.Window{w1, w2} }
	a, b := newJobs(t, Config{Redis: o}), newJobs(t, Config{Redis: o})
	ctx := context.Background()
	for _, j := range []*Jobs{a, b, a} {
		if !j.runDue(ctx, job) {
			t.Fatal("runDue failed")
		}
	}
	want := []string{TaskID(w1), TaskID(w2)}
	if got := taskIDs(t, insp.ListPendingTasks); !slices.Equal(got, want) {
		t.Fatalf("pending %v, want %v", got, want)
	}
	info, err := insp.GetTaskInfo(Queue, TaskID(w1))
	if err != nil || info.Type != TypeWindow || info.MaxRetry != DefaultMaxRetry || info.Retention != DefaultRetention {
		t.Fatalf("task %+v, %v", info, err)
	}

	startWorker(t, WorkerConfig{Redis: o}, job)
	eventually(t, "both windows are completed", func() bool { return len(taskIDs(t, insp.ListCompletedTasks)) == 2 })
	// A scheduler that read the watermark before the worker moved it
	// plans the same windows again: still nothing new.
	if !b.runDue(ctx, job) {
		t.Fatal("runDue failed")
	}
	time.Sleep(300 * time.Millisecond)
	computed, _ := job.counts()
	if computed[TaskID(w1)] != 1 || computed[TaskID(w2)] != 1 || len(computed) != 2 {
		t.Fatalf("computed %v, want each window once", computed)
	}
	if q, err := insp.GetQueueInfo(Queue); err != nil || q.ProcessedTotal != 2 || q.Pending != 0 {
		t.Fatalf("queue %+v, %v", q, err)
	}
}

// TestEnqueue: an admin's windows are queued once while waiting, and
// queued again once completed.
func TestEnqueue(t *testing.T) {
	o := redisOpts(t)
	insp := inspector(t, o)
	j := newJobs(t, Config{Redis: o})
	ctx := context.Background()
	for range 2 {
		if err := j.Enqueue(ctx, []domain.Window{w1}); err != nil {
			t.Fatal(err)
		}
	}
	if got := taskIDs(t, insp.ListPendingTasks); !slices.Equal(got, []string{TaskID(w1)}) {
		t.Fatalf("pending %v", got)
	}
	job := newFakeJob()
	stop := startWorker(t, WorkerConfig{Redis: o}, job)
	eventually(t, "the window is completed", func() bool { return len(taskIDs(t, insp.ListCompletedTasks)) == 1 })
	stop()
	if err := j.Enqueue(ctx, []domain.Window{w1, w2}); err != nil {
		t.Fatal(err)
	}
	if got, want := taskIDs(t, insp.ListPendingTasks), []string{TaskID(w1), TaskID(w2)}; !slices.Equal(got, want) {
		t.Fatalf("pending after a second request %v, want %v", got, want)
	}
	if err := j.Enqueue(ctx, []domain.Window{}); err != nil {
		t.Fatal(err)
	}
}

// TestWorkerRetriesAndArchives: a failing computation is retried with
// backoff until it succeeds; a bad payload is archived at once, never
// computed; a computation failing every retry ends archived.
func TestWorkerRetriesAndArchives(t *testing.T) {
	o := redisOpts(t)
	insp := inspector(t, o)
	job := newFakeJob()
	job.fail[TaskID(w1)] = 2
	job.fail[TaskID(w2)] = 100
	j := newJobs(t, Config{Redis: o, MaxRetry: 2})
	ctx := context.Background()
	if err := j.Enqueue(ctx, []domain.Window{w1, w2}); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewUniversalClient(o)
	defer rdb.Close()
	cli := asynq.NewClientFromRedisClient(rdb)
	if _, err := cli.Enqueue(asynq.NewTask(TypeWindow, []byte("nope"), asynq.Queue(Queue), asynq.TaskID("bad"))); err != nil {
		t.Fatal(err)
	}
	startWorker(t, WorkerConfig{Redis: o}, job)
	eventually(t, "w1 is completed and w2 and the bad task are archived", func() bool {
		return slices.Equal(taskIDs(t, insp.ListCompletedTasks), []string{TaskID(w1)}) &&
			len(taskIDs(t, insp.ListArchivedTasks)) == 2
	})
	computed, attempts := job.counts()
	if computed[TaskID(w1)] != 1 || attempts[TaskID(w1)] != 3 {
		t.Fatalf("w1: computed %d after %d attempts, want once after 3", computed[TaskID(w1)], attempts[TaskID(w1)])
	}
	if attempts[TaskID(w2)] != 3 || computed[TaskID(w2)] != 0 {
		t.Fatalf("w2: %d attempts, want 3 (MaxRetry 2)", attempts[TaskID(w2)])
	}
	bad, err := insp.GetTaskInfo(Queue, "bad")
	if err != nil || bad.State != asynq.TaskStateArchived || bad.Retried != 0 {
		t.Fatalf("bad task %+v, %v", bad, err)
	}
	dead, err := insp.GetTaskInfo(Queue, TaskID(w2))
	if err != nil || dead.State != asynq.TaskStateArchived || dead.LastErr == "" {
		t.Fatalf("w2's task %+v, %v", dead, err)
	}
	// A scheduler planning a dead window leaves it dead (visible, to be
	// run from asynq's tooling); an admin's request runs it again.
	if !j.runDue(ctx, &fakeJob{plan: func(time.Time) []domain.Window { return []domain.Window{w2} }}) {
		t.Fatal("runDue failed")
	}
	if dead, _ = insp.GetTaskInfo(Queue, TaskID(w2)); dead.State != asynq.TaskStateArchived {
		t.Fatalf("the scheduler replaced a dead task: %s", dead.State)
	}
	job.mu.Lock()
	job.fail[TaskID(w2)] = 0
	job.mu.Unlock()
	if err := j.Enqueue(ctx, []domain.Window{w2}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "w2 is computed after the admin's request", func() bool {
		c, _ := job.counts()
		return c[TaskID(w2)] == 1
	})
}

// TestWorkerShutdown: a window being computed when the worker stops, and
// not finished within the shutdown timeout, goes back to the queue and
// is computed by the next worker.
func TestWorkerShutdown(t *testing.T) {
	o := redisOpts(t)
	insp := inspector(t, o)
	j := newJobs(t, Config{Redis: o})
	if err := j.Enqueue(context.Background(), []domain.Window{w1}); err != nil {
		t.Fatal(err)
	}
	stuck := newFakeJob()
	stuck.block = true
	stop := startWorker(t, WorkerConfig{Redis: o, ShutdownTimeout: 200 * time.Millisecond}, stuck)
	select {
	case <-stuck.started:
	case <-time.After(20 * time.Second):
		t.Fatal("the worker did not start the task")
	}
	began := time.Now()
	stop()
	if d := time.Since(began); d > 10*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	info, err := insp.GetTaskInfo(Queue, TaskID(w1))
	if err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("interrupted task %+v, %v; want it pending again", info, err)
	}
	job := newFakeJob()
	startWorker(t, WorkerConfig{Redis: o}, job)
	eventually(t, "the next worker computes the window", func() bool {
		c, _ := job.counts()
		return c[TaskID(w1)] == 1
	})
}

// everySecond is a schedule that ticks on every whole second.
type everySecond struct{}

func (everySecond) Next(t time.Time) time.Time { return t.Truncate(time.Second).Add(time.Second) }

// TestRunTwoSchedulers: two schedulers running on one schedule enqueue
// each window once, at start and at every tick.
func TestRunTwoSchedulers(t *testing.T) {
	o := redisOpts(t)
	insp := inspector(t, o)
	job := newFakeJob()
	job.plan = func(now time.Time) []domain.Window {
		end := now.Truncate(time.Second)
		return []domain.Window{{Start: end.Add(-time.Second), End: end}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		j := newJobs(t, Config{Redis: o, Schedule: everySecond{}, Settle: 10 * time.Millisecond})
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := j.Run(ctx, job); err != nil {
				t.Error(err)
			}
		}()
	}
	time.Sleep(2500 * time.Millisecond)
	cancel()
	wg.Wait()
	job.mu.Lock()
	planned := job.planned
	job.mu.Unlock()
	ids := taskIDs(t, insp.ListPendingTasks)
	if len(ids) < 3 || planned < 2*len(ids) {
		t.Fatalf("%d plans enqueued %v; want at least 3 windows, each planned by both schedulers", planned, ids)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] == ids[i-1] {
			t.Fatalf("window enqueued twice: %v", ids)
		}
	}
}
