package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	memcache "github.com/activityd/activityd/adapters/cache/memory"
	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/testenv"
)

// every4h is the default schedule, 0 */4 * * *, without a cron parser.
type every4h struct{}

func (every4h) Next(t time.Time) time.Time {
	return t.UTC().Truncate(4 * time.Hour).Add(4 * time.Hour)
}

// fakeJobs records what the use cases enqueue.
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

type countFixture struct {
	*fixture
	store  ports.Store
	clock  *testenv.Clock // the counting job's clock
	counts *app.Counts
}

// newCountFixture serves the API (events and counts, cached in process)
// over st. The counting clock is set by the test.
func newCountFixture(t testing.TB, st ports.Store, jobs ports.Jobs) *countFixture {
	t.Helper()
	cache := memcache.New(memcache.Options{})
	clk := testenv.NewClock(time.Now())
	f := &fixture{t: t, logs: &syncBuffer{}, tokens: app.NewTokens(st, ports.SystemClock)}
	counts := app.NewCounts(st, clk, app.CountsConfig{
		Schedule: every4h{}, MaxCatchup: 42, Jobs: jobs,
		Cache: app.CacheConfig{Cache: cache, TTL: time.Minute},
	})
	f.srv = httpapi.NewServer(httpapi.Config{
		Events: app.NewEvents(st, ports.SystemClock, domain.DefaultLimits(),
			app.WithCache(app.CacheConfig{Cache: cache, TTL: time.Minute})),
		Counts: counts,
		Auth:   f.tokens,
	})
	f.admin = f.token(0, domain.ScopeAdmin)
	f.u1 = f.token(1, domain.ScopeRead, domain.ScopeWrite)
	f.u1wo = f.token(1, domain.ScopeWrite)
	f.u2 = f.token(2, domain.ScopeRead, domain.ScopeWrite)
	return &countFixture{fixture: f, store: st, clock: clk, counts: counts}
}

type countDoc struct {
	UserID      int64            `json:"user_id"`
	WindowStart string           `json:"window_start"`
	WindowEnd   string           `json:"window_end"`
	Total       int64            `json:"total"`
	ByAction    map[string]int64 `json:"by_action"`
	Provisional bool             `json:"provisional"`
}

type windowDoc struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type countListDoc struct {
	Items      []countDoc `json:"items"`
	NextCursor *string    `json:"next_cursor"`
	NextWindow *windowDoc `json:"next_window"`
}

func (r *response) counts() countListDoc {
	r.t.Helper()
	r.want(http.StatusOK)
	if ct := r.hdr.Get("Content-Type"); ct != "application/json" {
		r.t.Fatalf("%s: Content-Type %q", r, ct)
	}
	var l countListDoc
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		r.t.Fatalf("%s: not a count list: %v", r, err)
	}
	if l.Items == nil {
		r.t.Fatalf("%s: items is not an array", r)
	}
	for _, c := range l.Items {
		var sum int64
		for _, n := range c.ByAction {
			sum += n
		}
		if sum != c.Total || c.ByAction == nil {
			r.t.Errorf("%s: total %d, by_action %v", r, c.Total, c.ByAction)
		}
		for _, ts := range []string{c.WindowStart, c.WindowEnd} {
			if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") {
				r.t.Errorf("%s: window time %q not RFC 3339 UTC", r, ts)
			}
		}
	}
	return l
}

func (l countListDoc) String() string {
	var b strings.Builder
	for _, c := range l.Items {
		keys := make([]string, 0, len(c.ByAction))
		for k := range c.ByAction {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		fmt.Fprintf(&b, "u%d@%s:%d", c.UserID, c.WindowStart[11:16], c.Total)
		for _, k := range keys {
			fmt.Fprintf(&b, ",%s=%d", k, c.ByAction[k])
		}
		b.WriteString(" ")
	}
	return strings.TrimSpace(b.String())
}

// recordAt stores an event with the given recorded_at straight into the
// store (the API stamps recorded_at with the server clock).
func (f *countFixture) recordAt(user int64, action string, at time.Time) {
	f.t.Helper()
	at = domain.Normalize(at)
	e := domain.Event{ID: domain.NewID(at), UserID: user, Action: domain.Action(action), Status: domain.StatusPending,
		OccurredAt: at, RecordedAt: at, UpdatedAt: at, Metadata: []byte("{}")}
	if _, _, err := f.store.Create(context.Background(), e, "test"); err != nil {
		f.t.Fatal(err)
	}
}

var (
	w0 = time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC) // a window start on the 4-hour grid
	w1 = w0.Add(4 * time.Hour)
	w2 = w1.Add(4 * time.Hour)
)

func TestActivityCounts(t *testing.T) {
	stores := map[string]newStoreFunc{"memory": memoryStore, "sqlite": sqliteStore, "postgres": pgStore}
	for name, ns := range stores {
		t.Run(name, func(t *testing.T) { countsSuite(t, ns) })
	}
}

func countsSuite(t *testing.T, newStore newStoreFunc) {
	f := newCountFixture(t, newStore(t), nil)
	// Window w0: user 1 logs in twice and views once, user 2 views once;
	// window w1: user 1 once (exactly at its start).
	f.recordAt(1, "login", w0)
	f.recordAt(1, "login", w0.Add(time.Hour))
	f.recordAt(1, "viewed", w1.Add(-time.Microsecond))
	f.recordAt(2, "viewed", w0.Add(2*time.Hour))
	f.recordAt(1, "logout", w1)

	// Nothing computed yet: empty lists, not errors.
	if l := f.do("GET", "/v1/activity-counts", f.admin, "").counts(); len(l.Items) != 0 || l.NextCursor != nil {
		t.Fatalf("before any run: %s", l)
	}
	// An admin runs the job at 16:30: the watermark is empty, so the
	// latest closed window [12:00, 16:00) is computed; then at 16:30 again
	// nothing is due and the last window is computed again.
	f.clock.Set(w2.Add(30 * time.Minute))
	r := f.do("POST", "/v1/activity-counts/runs", f.admin, "").want(http.StatusAccepted)
	if got := string(r.body); !strings.Contains(got, `"windows":[{"start":"2025-06-01T12:00:00Z","end":"2025-06-01T16:00:00Z"}]`) ||
		!strings.Contains(got, `"skipped":0`) {
		t.Fatalf("POST runs = %s", got)
	}
	// Window w0 is older than the watermark: compute it as the job would
	// after a gap.
	if _, err := f.counts.Compute(context.Background(), domain.Window{Start: w0, End: w1}); err != nil {
		t.Fatal(err)
	}

	t.Run("admin sees every user, newest window first", func(t *testing.T) {
		l := f.do("GET", "/v1/activity-counts", f.admin, "").counts()
		if got := l.String(); got != "u1@12:00:1,logout=1 u2@08:00:1,viewed=1 u1@08:00:3,login=2,viewed=1" {
			t.Fatalf("GET = %s", got)
		}
		l = f.do("GET", "/v1/activity-counts?order=asc", f.admin, "").counts()
		if got := l.String(); got != "u1@08:00:3,login=2,viewed=1 u2@08:00:1,viewed=1 u1@12:00:1,logout=1" {
			t.Fatalf("GET order=asc = %s", got)
		}
		if it := l.Items[0]; it.WindowStart != "2025-06-01T08:00:00Z" || it.WindowEnd != "2025-06-01T12:00:00Z" {
			t.Fatalf("window of the first item: %+v", it)
		}
	})
	t.Run("filters", func(t *testing.T) {
		for q, want := range map[string]string{
			"user_id=1":                        "u1@12:00:1,logout=1 u1@08:00:3,login=2,viewed=1",
			"user_id=2":                        "u2@08:00:1,viewed=1",
			"user_id=3":                        "",
			"from=2025-06-01T12:00:00Z":        "u1@12:00:1,logout=1",
			"to=2025-06-01T12:00:00Z":          "u2@08:00:1,viewed=1 u1@08:00:3,login=2,viewed=1",
			"from=2025-06-01T08:00:01Z":        "u1@12:00:1,logout=1",
			"from=2025-06-01T10:00:00%2B02:00": "u1@12:00:1,logout=1 u2@08:00:1,viewed=1 u1@08:00:3,login=2,viewed=1", // 08:00Z
		} {
			if got := f.do("GET", "/v1/activity-counts?"+q, f.admin, "").counts().String(); got != want {
				t.Errorf("GET ?%s = %q, want %q", q, got, want)
			}
		}
	})
	t.Run("ownership", func(t *testing.T) {
		// A user reads its own counts, by default and by name.
		for _, path := range []string{"/v1/activity-counts", "/v1/activity-counts?user_id=1", "/v1/users/1/activity-counts"} {
			if got := f.do("GET", path, f.u1, "").counts().String(); got != "u1@12:00:1,logout=1 u1@08:00:3,login=2,viewed=1" {
				t.Errorf("GET %s as user 1 = %s", path, got)
			}
		}
		if got := f.do("GET", "/v1/users/2/activity-counts", f.u2, "").counts().String(); got != "u2@08:00:1,viewed=1" {
			t.Errorf("user 2's own counts = %s", got)
		}
		if got := f.do("GET", "/v1/users/1/activity-counts?order=asc", f.admin, "").counts().String(); got != "u1@08:00:3,login=2,viewed=1 u1@12:00:1,logout=1" {
			t.Errorf("admin, one user = %s", got)
		}
		// Another user's counts: 403, also through the cache.
		f.do("GET", "/v1/activity-counts?user_id=1", f.admin, "").want(http.StatusOK)
		for _, path := range []string{"/v1/activity-counts?user_id=1", "/v1/users/1/activity-counts"} {
			f.do("GET", path, f.u2, "").problem(http.StatusForbidden)
		}
		f.do("GET", "/v1/activity-counts", f.u1wo, "").problem(http.StatusForbidden) // no events:read
		f.do("GET", "/v1/activity-counts", "", "").problem(http.StatusUnauthorized)
		f.do("GET", "/v1/users/0/activity-counts", f.admin, "").problem(http.StatusNotFound)
		f.do("GET", "/v1/users/x/activity-counts", f.admin, "").problem(http.StatusNotFound)
		f.do("GET", "/v1/users/01/activity-counts", f.admin, "").problem(http.StatusNotFound)
		f.do("GET", "/v1/users//activity-counts", f.admin, "").problem(http.StatusNotFound)
	})
	t.Run("paging", func(t *testing.T) {
		for _, order := range []string{"desc", "asc"} {
			var got []string
			path := "/v1/activity-counts?limit=1&order=" + order
			for range 10 {
				l := f.do("GET", path, f.admin, "").counts()
				if len(l.Items) > 1 {
					t.Fatalf("limit=1 gave %d items", len(l.Items))
				}
				got = append(got, l.String())
				if l.NextCursor == nil {
					break
				}
				path = "/v1/activity-counts?limit=1&order=" + order + "&cursor=" + url.QueryEscape(*l.NextCursor)
			}
			want := []string{"u1@12:00:1,logout=1", "u2@08:00:1,viewed=1", "u1@08:00:3,login=2,viewed=1"}
			if order == "asc" {
				slices.Reverse(want)
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("paging %s = %q, want %q", order, got, want)
			}
		}
		// A cursor of one order is refused for the other; an event cursor is
		// not a count cursor.
		l := f.do("GET", "/v1/activity-counts?limit=1", f.admin, "").counts()
		p := f.do("GET", "/v1/activity-counts?order=asc&cursor="+url.QueryEscape(*l.NextCursor), f.admin, "").problem(http.StatusUnprocessableEntity)
		if !p.blames("cursor") {
			t.Errorf("problem %+v does not blame cursor", p)
		}
		ev := (domain.Cursor{Time: w0, TimeField: domain.ByRecordedAt, Order: domain.Desc}).Encode()
		f.do("GET", "/v1/activity-counts?cursor="+ev, f.admin, "").problem(http.StatusUnprocessableEntity)
	})
	t.Run("bad parameters", func(t *testing.T) {
		for q, field := range map[string]string{
			"limit=0":                 "limit",
			"limit=1001":              "limit",
			"limit=x":                 "limit",
			"from=today":              "from",
			"to=2025-13-01T00:00:00Z": "to",
			"from=2025-06-02T00:00:00Z&to=2025-06-01T00:00:00Z": "from",
			"order=up":   "order",
			"cursor=%%%": "",
			"user_id=-1": "user_id",
			"user_id=x":  "user_id",
		} {
			r := f.do("GET", "/v1/activity-counts?"+q, f.admin, "")
			if r.code != http.StatusUnprocessableEntity && r.code != http.StatusBadRequest {
				t.Errorf("GET ?%s: %d, want 400 or 422", q, r.code)
				continue
			}
			p := r.problem(r.code)
			if field != "" && !p.blames(field) {
				t.Errorf("GET ?%s: problem blames %v, want %s", q, p.fields(), field)
			}
		}
		for _, q := range []string{"action=login", "status=DONE", "limit=1&limit=2", "time_field=recorded_at"} {
			f.do("GET", "/v1/activity-counts?"+q, f.admin, "").problem(http.StatusBadRequest)
		}
		f.do("GET", "/v1/users/1/activity-counts?user_id=1", f.admin, "").problem(http.StatusBadRequest)
	})
	t.Run("cached, and invalidated when a window is written", func(t *testing.T) {
		path := "/v1/activity-counts?user_id=1&order=asc"
		first := f.do("GET", path, f.u1, "")
		first.counts()
		again := f.do("GET", path, f.u1, "")
		if again.hdr.Get("X-Cache") != "HIT" || !bytes.Equal(first.body, again.body) {
			t.Fatalf("repeat read: X-Cache %q", again.hdr.Get("X-Cache"))
		}
		// An event lands in the closed window (late commit) and an admin
		// runs the job: the window is computed again, the cache dropped.
		f.recordAt(1, "login", w1.Add(time.Minute))
		r := f.do("POST", "/v1/activity-counts/runs", f.admin, "{}").want(http.StatusAccepted)
		if !strings.Contains(string(r.body), `"windows":[{"start":"2025-06-01T12:00:00Z"`) {
			t.Fatalf("POST runs = %s", r.body)
		}
		after := f.do("GET", path, f.u1, "")
		if x := after.hdr.Get("X-Cache"); x == "HIT" {
			t.Fatalf("stale read after a window was computed: %s", after.body)
		}
		if got := after.counts().String(); got != "u1@08:00:3,login=2,viewed=1 u1@12:00:2,login=1,logout=1" {
			t.Fatalf("after recompute: %s", got)
		}
	})
	t.Run("runs", func(t *testing.T) {
		f.do("POST", "/v1/activity-counts/runs", f.u1, "").problem(http.StatusForbidden)
		f.do("POST", "/v1/activity-counts/runs", "", "").problem(http.StatusUnauthorized)
		for _, body := range []string{`{"window":"x"}`, `[]`, `{`, `{} {}`} {
			f.do("POST", "/v1/activity-counts/runs", f.admin, body).problem(http.StatusBadRequest)
		}
		f.serve(request{method: "POST", path: "/v1/activity-counts/runs", token: f.admin, body: "{}",
			header: map[string]string{"Content-Type": "text/plain"}}).problem(http.StatusUnsupportedMediaType)
		f.do("POST", "/v1/activity-counts/runs?now=1", f.admin, "").problem(http.StatusBadRequest)
		f.do("GET", "/v1/activity-counts/runs", f.admin, "").problem(http.StatusMethodNotAllowed)
		// Catch-up: 3 days later, the 18 windows since the watermark are due.
		f.clock.Set(w2.Add(72*time.Hour + time.Minute))
		var run struct {
			Windows []struct{ Start, End string }
			Skipped int
		}
		if err := json.Unmarshal(f.do("POST", "/v1/activity-counts/runs", f.admin, "").want(http.StatusAccepted).body, &run); err != nil {
			t.Fatal(err)
		}
		if len(run.Windows) != 18 || run.Skipped != 0 || run.Windows[0].Start != "2025-06-01T16:00:00Z" || run.Windows[17].End != "2025-06-04T16:00:00Z" {
			t.Fatalf("catch-up run = %+v", run)
		}
	})
}

// TestRunsEnqueue: with a jobs adapter, POST runs hands the windows over
// and computes nothing itself.
func TestRunsEnqueue(t *testing.T) {
	jobs := &fakeJobs{}
	f := newCountFixture(t, memoryStore(t), jobs)
	f.recordAt(1, "login", w0.Add(time.Minute))
	f.clock.Set(w1.Add(time.Minute))
	r := f.do("POST", "/v1/activity-counts/runs", f.admin, "").want(http.StatusAccepted)
	if !strings.Contains(string(r.body), `"windows":[{"start":"2025-06-01T08:00:00Z","end":"2025-06-01T12:00:00Z"}]`) {
		t.Fatalf("POST runs = %s", r.body)
	}
	if len(jobs.ws) != 1 || !jobs.ws[0].Start.Equal(w0) {
		t.Fatalf("enqueued %v", jobs.ws)
	}
	if l := f.do("GET", "/v1/activity-counts", f.admin, "").counts(); len(l.Items) != 0 {
		t.Fatalf("computed in the request: %s", l)
	}
}

// TestCountsRoutesOptional: without Config.Counts the routes are absent.
func TestCountsRoutesOptional(t *testing.T) {
	f := newFixture(t)
	f.do("GET", "/v1/activity-counts", f.admin, "").problem(http.StatusNotFound)
}
