package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// TestCountsNextWindow: the listing and a run say which window is open,
// the one the job counts next, so that a newcomer learns when the events
// just recorded will be counted.
func TestCountsNextWindow(t *testing.T) {
	f := newCountFixture(t, memoryStore(t), nil)
	tests := []struct {
		now        time.Time
		start, end string
	}{
		{w0.Add(90 * time.Minute), "2025-06-01T08:00:00Z", "2025-06-01T12:00:00Z"},
		{w1.Add(-time.Microsecond), "2025-06-01T08:00:00Z", "2025-06-01T12:00:00Z"},
		{w1, "2025-06-01T12:00:00Z", "2025-06-01T16:00:00Z"}, // on a tick: the window it opens
		{w2.Add(3*time.Hour + 59*time.Minute), "2025-06-01T16:00:00Z", "2025-06-01T20:00:00Z"},
	}
	for _, tt := range tests { // in time order: a run never goes back
		f.clock.Set(tt.now)
		for _, path := range []string{"/v1/activity-counts", "/v1/users/1/activity-counts", "/v1/activity-counts?provisional=true"} {
			l := f.do("GET", path, f.u1, "").counts()
			if l.NextWindow == nil || l.NextWindow.Start != tt.start || l.NextWindow.End != tt.end {
				t.Errorf("at %s, GET %s: next_window %+v, want [%s, %s)", tt.now.Format(time.RFC3339Nano), path, l.NextWindow, tt.start, tt.end)
			}
		}
		r := f.do("POST", "/v1/activity-counts/runs", f.admin, "").want(http.StatusAccepted)
		var run struct {
			Windows    []windowDoc `json:"windows"`
			Skipped    int         `json:"skipped"`
			NextWindow *windowDoc  `json:"next_window"`
		}
		if err := json.Unmarshal(r.body, &run); err != nil {
			t.Fatal(err)
		}
		if run.NextWindow == nil || run.NextWindow.Start != tt.start || run.NextWindow.End != tt.end {
			t.Errorf("at %s, POST runs: next_window %+v, want [%s, %s)", tt.now, run.NextWindow, tt.start, tt.end)
		}
		for _, w := range run.Windows {
			if w.End > tt.start { // RFC 3339 UTC strings of one format compare as times
				t.Errorf("at %s, a run computed %+v, which is not closed", tt.now, w)
			}
		}
	}
}

// TestCountsNextWindowNull: without a schedule there is no next window.
func TestCountsNextWindowNull(t *testing.T) {
	st := memoryStore(t)
	f := &fixture{t: t, logs: &syncBuffer{}, tokens: app.NewTokens(st, ports.SystemClock)}
	f.srv = httpapi.NewServer(httpapi.Config{
		Events: app.NewEvents(st, ports.SystemClock, domain.DefaultLimits()),
		Counts: app.NewCounts(st, ports.SystemClock, app.CountsConfig{}),
		Auth:   f.tokens,
	})
	f.admin = f.token(0, domain.ScopeAdmin)
	for _, path := range []string{"/v1/activity-counts", "/v1/activity-counts?provisional=true"} {
		r := f.do("GET", path, f.admin, "")
		if l := r.counts(); l.NextWindow != nil || len(l.Items) != 0 || !strings.Contains(string(r.body), `"next_window":null`) {
			t.Errorf("GET %s without a schedule: %s", path, r.body)
		}
	}
	r := f.do("POST", "/v1/activity-counts/runs", f.admin, "").want(http.StatusAccepted)
	if !strings.Contains(string(r.body), `"next_window":null`) {
		t.Errorf("POST runs without a schedule: %s", r.body)
	}
}

// TestCountsProvisional: ?provisional=true appends the open window's
// counts so far, counted from the events at the read, marked, under the
// listing's ownership rules, never stored and never cached.
func TestCountsProvisional(t *testing.T) {
	for name, ns := range map[string]newStoreFunc{"memory": memoryStore, "sqlite": sqliteStore, "postgres": pgStore} {
		t.Run(name, func(t *testing.T) { provisionalSuite(t, ns) })
	}
}

func provisionalSuite(t *testing.T, newStore newStoreFunc) {
	f := newCountFixture(t, newStore(t), nil)
	ctx := context.Background()
	// Window w0 is computed; w1 is open, read at w1 + 1h30.
	f.recordAt(1, "login", w0.Add(time.Hour))
	f.recordAt(2, "viewed", w0.Add(2*time.Hour))
	if _, err := f.counts.Compute(ctx, domain.Window{Start: w0, End: w1}); err != nil {
		t.Fatal(err)
	}
	f.recordAt(1, "login", w1)
	f.recordAt(1, "created", w1.Add(time.Hour))
	f.recordAt(2, "login", w1.Add(80*time.Minute))
	f.recordAt(3, "login", w1.Add(2*time.Hour)) // after the read
	now := w1.Add(90 * time.Minute)
	f.clock.Set(now)
	storedBefore, err := f.store.ListCounts(ctx, domain.CountFilter{Order: domain.Asc, Limit: domain.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}

	wantEnd := domain.FormatTime(now)
	tests := []struct {
		name, token, path string
		want              string // countListDoc.String(), stored then provisional
		provisional       int    // how many of the items are provisional (the last ones)
	}{
		{"admin: every user", f.admin, "/v1/activity-counts?provisional=true",
			"u2@08:00:1,viewed=1 u1@08:00:1,login=1 u2@12:00:1,login=1 u1@12:00:2,created=1,login=1", 2},
		{"admin, ascending", f.admin, "/v1/activity-counts?provisional=true&order=asc",
			"u1@08:00:1,login=1 u2@08:00:1,viewed=1 u1@12:00:2,created=1,login=1 u2@12:00:1,login=1", 2},
		{"admin names a user", f.admin, "/v1/activity-counts?provisional=true&user_id=2",
			"u2@08:00:1,viewed=1 u2@12:00:1,login=1", 1},
		{"a user sees its own", f.u1, "/v1/activity-counts?provisional=true",
			"u1@08:00:1,login=1 u1@12:00:2,created=1,login=1", 1},
		{"a user by path", f.u2, "/v1/users/2/activity-counts?provisional=true",
			"u2@08:00:1,viewed=1 u2@12:00:1,login=1", 1},
		{"before the open window", f.admin, "/v1/activity-counts?provisional=true&to=2025-06-01T12:00:00Z",
			"u2@08:00:1,viewed=1 u1@08:00:1,login=1", 0},
		{"provisional=false", f.admin, "/v1/activity-counts?provisional=false",
			"u2@08:00:1,viewed=1 u1@08:00:1,login=1", 0},
		{"provisional empty", f.admin, "/v1/activity-counts?provisional=",
			"u2@08:00:1,viewed=1 u1@08:00:1,login=1", 0},
		{"a user without a provisional count", f.token(4, domain.ScopeRead), "/v1/activity-counts?provisional=true", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.t = t
			defer func() { f.t = t }()
			for i := range 2 {
				r := f.do("GET", tt.path, tt.token, "")
				l := r.counts()
				if got := l.String(); got != tt.want {
					t.Fatalf("read %d: %s\nwant %s", i+1, got, tt.want)
				}
				for j, it := range l.Items {
					prov := j >= len(l.Items)-tt.provisional
					if it.Provisional != prov {
						t.Errorf("item %d: provisional %v, want %v", j, it.Provisional, prov)
					}
					if prov && (it.WindowEnd != wantEnd || it.WindowStart != "2025-06-01T12:00:00Z") {
						t.Errorf("provisional item %d: [%s, %s), want [12:00, %s)", j, it.WindowStart, it.WindowEnd, wantEnd)
					}
				}
				if strings.Contains(tt.path, "provisional=true") && r.hdr.Get("X-Cache") != "BYPASS" {
					t.Errorf("read %d: X-Cache %q, want BYPASS: provisional counts are not cached", i+1, r.hdr.Get("X-Cache"))
				}
				if strings.Count(string(r.body), `"provisional"`) != tt.provisional {
					t.Errorf("read %d: %s: provisional marks only the live items", i+1, r.body)
				}
			}
		})
	}
	f.t = t

	t.Run("another user's: 403", func(t *testing.T) {
		f.t = t
		defer func() { f.t = t }()
		f.do("GET", "/v1/activity-counts?provisional=true&user_id=2", f.u1, "").problem(http.StatusForbidden)
		f.do("GET", "/v1/users/2/activity-counts?provisional=true", f.u1, "").problem(http.StatusForbidden)
		f.do("GET", "/v1/activity-counts?provisional=true", f.u1wo, "").problem(http.StatusForbidden)
	})
	t.Run("bad value: 422 naming provisional", func(t *testing.T) {
		f.t = t
		defer func() { f.t = t }()
		for _, v := range []string{"1", "yes", "TRUE", "true%20"} {
			if p := f.do("GET", "/v1/activity-counts?provisional="+v, f.admin, "").problem(http.StatusUnprocessableEntity); !p.blames("provisional") {
				t.Errorf("provisional=%s: %+v does not blame provisional", v, p)
			}
		}
		f.do("GET", "/v1/activity-counts?provisional=true&provisional=true", f.admin, "").problem(http.StatusBadRequest)
	})
	t.Run("first page only", func(t *testing.T) {
		f.t = t
		defer func() { f.t = t }()
		l := f.do("GET", "/v1/activity-counts?provisional=true&limit=1", f.admin, "").counts()
		if got := l.String(); got != "u2@08:00:1,viewed=1 u2@12:00:1,login=1 u1@12:00:2,created=1,login=1" || l.NextCursor == nil {
			t.Fatalf("first page: %s, cursor %v", got, l.NextCursor)
		}
		l = f.do("GET", "/v1/activity-counts?provisional=true&limit=1&cursor="+url.QueryEscape(*l.NextCursor), f.admin, "").counts()
		if got := l.String(); got != "u1@08:00:1,login=1" {
			t.Fatalf("second page: %s", got)
		}
	})
	t.Run("counted live: an event recorded now is in the next read", func(t *testing.T) {
		f.t = t
		defer func() { f.t = t }()
		f.recordAt(1, "deleted", now.Add(-time.Second))
		if got := f.do("GET", "/v1/activity-counts?provisional=true", f.u1, "").counts().String(); got != "u1@08:00:1,login=1 u1@12:00:3,created=1,deleted=1,login=1" {
			t.Fatalf("after recording: %s", got)
		}
	})

	storedAfter, err := f.store.ListCounts(ctx, domain.CountFilter{Order: domain.Asc, Limit: domain.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(storedAfter.Counts) != len(storedBefore.Counts) || len(storedAfter.Counts) != 2 {
		t.Fatalf("stored counts changed: %+v, was %+v", storedAfter.Counts, storedBefore.Counts)
	}
	for i := range storedAfter.Counts {
		if a, b := storedAfter.Counts[i], storedBefore.Counts[i]; !a.Start.Equal(b.Start) || a.UserID != b.UserID || a.Total != b.Total {
			t.Fatalf("stored count %d changed: %+v, was %+v", i, a, b)
		}
	}

	// Once the job computes the window, the real one is listed, and the
	// next open window has no events yet.
	f.clock.Set(w2.Add(time.Minute))
	if _, err := f.counts.Compute(ctx, domain.Window{Start: w1, End: w2}); err != nil {
		t.Fatal(err)
	}
	l := f.do("GET", "/v1/activity-counts?provisional=true&user_id=1", f.admin, "").counts()
	if got := l.String(); got != "u1@12:00:3,created=1,deleted=1,login=1 u1@08:00:1,login=1" || l.Items[0].Provisional {
		t.Fatalf("after the window was computed: %s", got)
	}
}
