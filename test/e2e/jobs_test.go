package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/activityd/activityd/test/binary"
	"github.com/activityd/activityd/test/testenv"
)

// TestScheduledCountingOverAsynq runs the deployment the README describes
// for scale: serve, a worker and two schedulers over one PostgreSQL and
// one Redis, counting every minute. The window holding the events is
// computed once (two schedulers, one task) and its counts are exact; the
// worker's computation invalidates the counts serve cached; an admin's
// "compute now" goes through the queue too; every process stops cleanly
// on SIGTERM.
func TestScheduledCountingOverAsynq(t *testing.T) {
	began := time.Now()
	dbURL, _ := testenv.PostgresSchema(t)
	// A private Redis: asynq's keys have no prefix to keep tests apart.
	redisAddr, _, _ := testenv.StartRedis(t)
	const admin = "jobs-admin-token-0123456789abcdef"
	traces := newOTLPReceiver(t)
	env := []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + traces.URL,
		"OTEL_BSP_SCHEDULE_DELAY=200",
		"DATABASE_URL=" + dbURL,
		"REDIS_URL=redis://" + redisAddr + "/0",
		"BOOTSTRAP_ADMIN_TOKEN=" + admin,
		"COUNT_SCHEDULE=* * * * *",
		"COUNT_SETTLE=1s",
		"CACHE_TTL=10m", // a stale cached read would outlive the test
		"SHUTDOWN_TIMEOUT=5s",
	}
	dir := t.TempDir()
	if _, errOut, code := binary.Run(t, dir, env, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, errOut)
	}
	srv := binary.Start(t, dir, env...)
	if !strings.Contains(srv.Logs(), "counting job left to") {
		t.Fatalf("serve with REDIS_URL did not leave the job to the scheduler:\n%s", srv.Logs())
	}

	// Events: user 11 logs in 3 times and uploads twice, user 12 logs in once.
	wantCounts := map[string]int64{"11/login": 3, "11/upload_file": 2, "12/login": 1}
	var lastRecorded time.Time
	for key, n := range wantCounts {
		user, action, _ := strings.Cut(key, "/")
		for range n {
			r := binary.Call(t, "POST", srv.Base+"/v1/events", admin, fmt.Sprintf(`{"user_id":%s,"action":%q}`, user, action))
			binary.Want(t, r, 201)
			at, err := time.Parse(time.RFC3339Nano, r.Body["recorded_at"].(string))
			if err != nil {
				t.Fatal(err)
			}
			lastRecorded = maxTime(lastRecorded, at)
		}
	}
	// A read cached before the window is computed: the worker's
	// computation must invalidate it.
	if r := binary.Call(t, "GET", srv.Base+"/v1/activity-counts", admin, ""); r.Status != 200 || r.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("first count read: %d %s %s", r.Status, r.Header.Get("X-Cache"), r.Raw)
	}
	if r := binary.Call(t, "GET", srv.Base+"/v1/activity-counts", admin, ""); r.Header.Get("X-Cache") != "HIT" {
		t.Fatalf("second count read not cached: %s", r.Header.Get("X-Cache"))
	}

	// Worker and schedulers serve their metrics on a listener of their own.
	jobEnv := append(slices.Clip(env), "METRICS_ADDR=127.0.0.1:0")
	worker := binary.Worker.Start(t, dir, jobEnv...)
	sched1 := binary.Scheduler.Start(t, dir, jobEnv...)
	sched2 := binary.Scheduler.Start(t, dir, jobEnv...)

	// Wait until a computed window ends after the last event: every
	// window holding the events is then computed.
	var page countPage
	deadline := time.Now().Add(150 * time.Second)
	for {
		page = listCounts(t, srv.Base, admin)
		if page.coveredUntil().After(lastRecorded) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no window covering %s computed within 150s: %+v\nworker:\n%s\nscheduler:\n%s",
				lastRecorded, page, worker.Logs(), sched1.Logs())
		}
		time.Sleep(250 * time.Millisecond)
	}
	covered := time.Since(began)
	if got := page.totals(); !mapsEqual(got, wantCounts) {
		t.Fatalf("counts %v, want %v (exact, not doubled): %+v", got, wantCounts, page)
	}

	// Each window was enqueued once and processed once, whatever the two
	// schedulers did: as many tasks processed as distinct windows, each
	// counted once by the worker. (The schedulers stop first, and the
	// queue drains, so that no tick comes in the middle of the checks.)
	// The scheduler reports how far counting is behind: a window at most.
	if lag, ok := sample(scrape(t, metricsURL(t, sched1)), "activityd_count_lag_seconds"); !ok || lag < 0 || lag > 60 {
		t.Errorf("scheduler's activityd_count_lag_seconds = %v (exported: %v), want 0..60", lag, ok)
	}
	for name, p := range map[string]*binary.Proc{"scheduler 1": sched1, "scheduler 2": sched2} {
		if err := p.Stop(t); err != nil {
			t.Errorf("%s: SIGTERM exit: %v\n%s", name, err, p.Logs())
		}
	}
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: redisAddr})
	defer insp.Close()
	var q *asynq.QueueInfo
	deadline = time.Now().Add(30 * time.Second)
	for {
		var err error
		if q, err = insp.GetQueueInfo("counts"); err != nil {
			t.Fatal(err)
		}
		if q.Pending+q.Active+q.Scheduled+q.Retry == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue did not drain within 30s: %+v", q)
		}
		time.Sleep(100 * time.Millisecond)
	}
	completed, err := insp.ListCompletedTasks("counts", asynq.PageSize(1000))
	if err != nil {
		t.Fatal(err)
	}
	if q.ProcessedTotal != len(completed) || q.FailedTotal != 0 || len(completed) == 0 {
		t.Fatalf("queue: processed %d, failed %d, completed tasks %d; want each window processed once",
			q.ProcessedTotal, q.FailedTotal, len(completed))
	}
	counted := map[string]int{}
	for _, line := range strings.Split(worker.Logs(), "\n") {
		var rec struct{ Msg, Window string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "counted window" {
			counted[rec.Window]++
		}
	}
	for w, n := range counted {
		if n != 1 {
			t.Errorf("window %s counted %d times", w, n)
		}
	}
	if len(counted) != len(completed) {
		t.Errorf("the worker counted %d windows, asynq completed %d tasks", len(counted), len(completed))
	}
	enqueued := strings.Count(sched1.Logs(), `"msg":"counting window enqueued"`) +
		strings.Count(sched2.Logs(), `"msg":"counting window enqueued"`)
	if enqueued != len(completed) {
		t.Errorf("the schedulers enqueued %d tasks for %d windows", enqueued, len(completed))
	}

	// An admin's "compute now" goes through the queue: the last window is
	// computed again (its completed task replaced), with the same counts.
	r := binary.Call(t, "POST", srv.Base+"/v1/activity-counts/runs", admin, "")
	if r.Status != 202 {
		t.Fatalf("run: %d %s", r.Status, r.Raw)
	}
	deadline = time.Now().Add(30 * time.Second)
	for strings.Count(worker.Logs(), `"msg":"counted window"`) <= len(completed) {
		if time.Now().After(deadline) {
			t.Fatalf("the admin's run was not computed within 30s:\n%s", worker.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := listCounts(t, srv.Base, admin).totals(); !mapsEqual(got, wantCounts) {
		t.Fatalf("counts after a second computation %v, want %v", got, wantCounts)
	}
	// The worker's metrics count each computation, the admin's included.
	wm := scrape(t, metricsURL(t, worker))
	if n, _ := sample(wm, `activityd_count_runs_total{result="ok"}`); int(n) != len(completed)+1 {
		t.Errorf("worker's activityd_count_runs_total{result=\"ok\"} = %v, want %d", n, len(completed)+1)
	}
	if n, _ := sample(wm, `activityd_count_windows_computed_total`); int(n) != len(completed)+1 {
		t.Errorf("worker's activityd_count_windows_computed_total = %v, want %d", n, len(completed)+1)
	}

	for name, p := range map[string]*binary.Proc{"worker": worker, "serve": srv} {
		if err := p.Stop(t); err != nil {
			t.Errorf("%s: SIGTERM exit: %v\n%s", name, err, p.Logs())
		}
	}
	checkJobTraces(t, traces.received(), len(completed))
	t.Logf("counts covered the events %v after the start; the whole test took %v",
		covered.Round(time.Second), time.Since(began).Round(time.Second))
}

// TestJobsNeedRedis: worker and scheduler refuse to start without REDIS_URL.
func TestJobsNeedRedis(t *testing.T) {
	dir := t.TempDir()
	for _, cmd := range []string{"worker", "scheduler"} {
		_, errOut, code := binary.Run(t, dir, []string{"DATABASE_URL=memory:"}, cmd)
		if code != 2 || !strings.Contains(errOut, "REDIS_URL") {
			t.Errorf("%s without REDIS_URL: exit %d, stderr %q; want 2 and a message naming REDIS_URL", cmd, code, errOut)
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

type countPage struct {
	Items []struct {
		UserID      int64            `json:"user_id"`
		WindowStart time.Time        `json:"window_start"`
		WindowEnd   time.Time        `json:"window_end"`
		Total       int64            `json:"total"`
		ByAction    map[string]int64 `json:"by_action"`
	} `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

// listCounts reads every computed count (one page: the test has few).
func listCounts(t *testing.T, base, token string) countPage {
	t.Helper()
	r := binary.Call(t, "GET", base+"/v1/activity-counts?limit=1000", token, "")
	binary.Want(t, r, 200)
	var p countPage
	if err := json.Unmarshal([]byte(r.Raw), &p); err != nil {
		t.Fatalf("%v: %s", err, r.Raw)
	}
	if p.NextCursor != nil {
		t.Fatalf("more than one page of counts: %s", r.Raw)
	}
	return p
}

// coveredUntil is the latest end of a window with counts.
func (p countPage) coveredUntil() time.Time {
	var end time.Time
	for _, it := range p.Items {
		end = maxTime(end, it.WindowEnd)
	}
	return end
}

// totals sums the counts per user and action over every window.
func (p countPage) totals() map[string]int64 {
	m := map[string]int64{}
	for _, it := range p.Items {
		var sum int64
		for a, n := range it.ByAction {
			m[fmt.Sprintf("%d/%s", it.UserID, a)] += n
			sum += n
		}
		if sum != it.Total {
			m["inconsistent total"]++
		}
	}
	return m
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// checkJobTraces: every window the worker computed is traced across the
// three processes: the worker's "count-window compute" span is the child
// of the "count-window enqueue" span that put its task in the queue (its
// context travelled in the task's headers), which a scheduler's tick made
// — or, for the admin's run, serve's HTTP request. The SQL the worker ran
// is under the compute span.
func checkJobTraces(t *testing.T, spans []span, scheduled int) {
	t.Helper()
	byID := map[string]span{}
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	root := func(s span) span {
		for s.ParentID != "" {
			p, ok := byID[s.ParentID]
			if !ok {
				break
			}
			s = p
		}
		return s
	}
	var fromTicks, fromRequest int
	for _, s := range spans {
		if s.Name != "count-window compute" || s.Service != "activityd-worker" || s.Error {
			continue
		}
		enq, ok := byID[s.ParentID]
		if !ok || enq.Name != "count-window enqueue" || enq.TraceID != s.TraceID {
			t.Errorf("compute span %s: parent %s is not an enqueue span of its trace", s.SpanID, s.ParentID)
			continue
		}
		switch r := root(enq); {
		case enq.Service == "activityd-scheduler" && r.Name == "count-window schedule":
			fromTicks++
		case enq.Service == "activityd" && r.Name == "POST /v1/activity-counts/runs":
			fromRequest++
		default:
			t.Errorf("enqueue span of %s rooted in %s %q", enq.Service, r.Service, r.Name)
		}
		var sql bool
		for _, c := range spans {
			sql = sql || (c.ParentID == s.SpanID && c.dbSystem() == "postgresql")
		}
		if !sql {
			t.Errorf("no SQL span under the compute span %s", s.SpanID)
		}
	}
	if fromTicks != scheduled || fromRequest != 1 {
		t.Errorf("compute spans: %d from scheduler ticks (want %d), %d from the admin's request (want 1):\n%s",
			fromTicks, scheduled, fromRequest, dumpSpans(spans))
	}
}
