package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/test/binary"
	"github.com/activityd/activityd/test/promql"
	"github.com/activityd/activityd/test/testenv"
)

// TestDashboardHonesty: every metric the provisioned Grafana dashboard
// (deploy/grafana/dashboards/activityd.json) queries is one the binary
// really exports, with the type its use implies and the labels it
// groups and filters by. A dashboard panel over a metric nobody exports
// shows "No data" forever and looks like a quiet service.
//
// It drives the traffic that makes every series exist, in two processes
// whose scrapes it adds up (as Prometheus would): serve with the
// counting job in process on SQLite (requests, events, transitions, cache
// MISS and HIT, a count run, the storage pool), and serve over a private
// Redis that is then stopped (cache errors).
func TestDashboardHonesty(t *testing.T) {
	exprs := dashboardExprs(t, filepath.Join("..", "..", "deploy", "grafana", "dashboards", "activityd.json"))
	if len(exprs) == 0 {
		t.Fatal("the dashboard has no PromQL expr")
	}
	var foreign []string
	used := map[string]bool{}
	for _, e := range exprs {
		for _, m := range promql.Metrics(e) {
			if strings.HasPrefix(m, "activityd_") {
				used[m] = true
			} else if !runtimeMetric(m) {
				foreign = append(foreign, fmt.Sprintf("%s (in %s)", m, e))
			}
		}
	}
	if len(foreign) > 0 {
		t.Errorf("the dashboard queries metrics that are neither activityd_* nor Go/process metrics:\n  %s",
			strings.Join(foreign, "\n  "))
	}

	const admin = "dashboard-admin-token-0123456789abcdef"
	// Started first: without redis-server this skips (or fails under CI)
	// before anything else runs.
	redisAddr, stopRedis, _ := testenv.StartRedis(t)

	// Process 1: everything in process, on SQLite.
	dir := t.TempDir()
	p := binary.Start(t, dir, "DATABASE_URL=sqlite:"+filepath.Join(dir, "a.db"), "BOOTSTRAP_ADMIN_TOKEN="+admin)
	r := binary.Call(t, "POST", p.Base+"/v1/events", admin, `{"user_id":7,"action":"login"}`)
	binary.Want(t, r, 201)
	id, _ := r.Body["id"].(string)
	binary.Want(t, binary.Call(t, "POST", p.Base+"/v1/events", admin, `{"user_id":7,"action":"upload_file"}`), 201)
	binary.Want(t, binary.Call(t, "PATCH", p.Base+"/v1/events/"+id, admin, `{"status":"IN_PROGRESS"}`), 200) // ok
	binary.Want(t, binary.Call(t, "PATCH", p.Base+"/v1/events/"+id, admin, `{"status":"PENDING"}`), 409)     // invalid
	binary.Want(t, binary.Call(t, "PATCH", p.Base+"/v1/events/00000000-0000-4000-8000-000000000000", admin,
		`{"status":"IN_PROGRESS"}`), 404) // not_found
	binary.Want(t, binary.Call(t, "GET", p.Base+"/v1/events/"+id, "", ""), 401)
	a := binary.Call(t, "GET", p.Base+"/v1/users/7/events", admin, "")
	b := binary.Call(t, "GET", p.Base+"/v1/users/7/events", admin, "")
	if got := a.Header.Get("X-Cache") + " " + b.Header.Get("X-Cache"); got != "MISS HIT" {
		t.Fatalf("two list reads: X-Cache %q, want \"MISS HIT\"", got)
	}
	binary.Want(t, binary.Call(t, "POST", p.Base+"/v1/activity-counts/runs", admin, ""), 202)
	binary.Want(t, binary.Call(t, "GET", p.Base+"/v1/activity-counts", admin, ""), 200)
	binary.Want(t, binary.Call(t, "POST", p.Base+"/v1/checkpoints", admin, ""), 201) // activityd_checkpoint_age_seconds

	// The count run computes in the background: wait (briefly) for its
	// metrics before the final scrape.
	var scrape1 string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r := binary.Call(t, "GET", p.Base+"/metrics", "", "")
		binary.Want(t, r, 200)
		scrape1 = r.Raw
		if strings.Contains(scrape1, "\nactivityd_count_runs_total{") || time.Now().After(deadline) {
			break
		}
	}

	// Process 2: the cache in Redis, which goes away.
	dir2 := t.TempDir()
	q := binary.Start(t, dir2, "DATABASE_URL=sqlite:"+filepath.Join(dir2, "b.db"), "BOOTSTRAP_ADMIN_TOKEN="+admin,
		"REDIS_URL=redis://"+redisAddr+"/0", "CACHE_TIMEOUT=200ms")
	binary.Want(t, binary.Call(t, "POST", q.Base+"/v1/events", admin, `{"user_id":8,"action":"login"}`), 201)
	if r := binary.Call(t, "GET", q.Base+"/v1/users/8/events", admin, ""); r.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("first read over Redis: X-Cache %q, want MISS", r.Header.Get("X-Cache"))
	}
	stopRedis()
	if r := binary.Call(t, "GET", q.Base+"/v1/users/8/events", admin, ""); r.Status != 200 || r.Header.Get("X-Cache") != "BYPASS" {
		t.Fatalf("read with Redis stopped: %d, X-Cache %q, want 200 BYPASS: %s", r.Status, r.Header.Get("X-Cache"), r.Raw)
	}
	r = binary.Call(t, "GET", q.Base+"/metrics", "", "")
	binary.Want(t, r, 200)

	exported := parseExposition(scrape1)
	exported.add(parseExposition(r.Raw))

	// 1. Every metric the dashboard names is exported.
	var missing []string
	for m := range used {
		if _, ok := exported.samples[m]; !ok {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the dashboard queries %d metric(s) that activityd does not export (after traffic that should "+
			"make every one of them exist):\n  %s", len(missing), strings.Join(missing, "\n  "))
	}

	// 2. Each is of the type its name promises: _total a counter,
	// _bucket/_sum/_count the series of a histogram.
	var mistyped []string
	for m := range used {
		if _, ok := exported.samples[m]; !ok {
			continue
		}
		if want, typ := expectedType(m, exported.types); want != "" && typ != want {
			mistyped = append(mistyped, fmt.Sprintf("%s is a %q, the dashboard uses it as a %s", m, typ, want))
		}
	}
	sort.Strings(mistyped)
	if len(mistyped) > 0 {
		t.Errorf("dashboard metrics of the wrong type:\n  %s", strings.Join(mistyped, "\n  "))
	}

	// 3. The labels an expr groups or filters by are on its metrics, and
	// a value it matches exactly (result="HIT") is one that is exported.
	// Skipped for an expr whose metrics are missing: reported above.
	var badLabels []string
	for _, e := range exprs {
		ms := promql.Metrics(e)
		if slices.ContainsFunc(ms, func(m string) bool { _, ok := exported.samples[m]; return !ok }) {
			continue
		}
		have := map[string]bool{"job": true, "instance": true} // added by Prometheus
		for _, m := range ms {
			for l := range exported.samples[m] {
				have[l] = true
			}
		}
		for _, l := range promql.GroupingLabels(e) {
			if !have[l] {
				badLabels = append(badLabels, fmt.Sprintf("by/on label %q is on none of %v (in %s)", l, ms, e))
			}
		}
		for _, s := range promql.Selectors(e) {
			if _, ok := exported.samples[s.Metric]; !ok {
				continue
			}
			values, ok := exported.samples[s.Metric][s.Label]
			switch {
			case !ok && (s.Label == "job" || s.Label == "instance"):
			case !ok:
				badLabels = append(badLabels, fmt.Sprintf("%s has no label %q (in %s)", s.Metric, s.Label, e))
			case s.Op == "=" && !values[s.Value]:
				badLabels = append(badLabels, fmt.Sprintf("%s{%s=%q}: no such value exported, only %v (in %s)",
					s.Metric, s.Label, s.Value, sortedKeys(values), e))
			}
		}
	}
	if len(badLabels) > 0 {
		t.Errorf("dashboard labels that activityd does not export:\n  %s", strings.Join(badLabels, "\n  "))
	}
}

// dashboardExprs returns every "expr" string anywhere in the dashboard
// JSON (panel targets, panels nested in collapsed rows, ...).
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if e, ok := v["expr"].(string); ok && strings.TrimSpace(e) != "" {
				out = append(out, e)
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)
	return out
}

// runtimeMetric reports whether name is one of the Go runtime, process
// or exporter metrics every activityd process exports.
func runtimeMetric(name string) bool {
	return name == "target_info" || name == "up" ||
		strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_")
}

// expectedType is the family type name implies ("" when it implies none)
// and the type exported for it.
func expectedType(name string, types map[string]string) (want, got string) {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && types[name] == "" {
			if suffix == "_bucket" || types[base] != "summary" {
				return "histogram", types[base]
			}
			return "summary", types[base]
		}
	}
	if strings.HasSuffix(name, "_total") {
		return "counter", types[name]
	}
	return "", types[name]
}

// exposition is what a /metrics scrape holds: for each sample name, its
// labels and their values; for each family, its type.
type exposition struct {
	samples map[string]map[string]map[string]bool // name → label → values
	types   map[string]string
}

var (
	typeLine   = regexp.MustCompile(`^# TYPE (\S+) (\S+)`)
	sampleLine = regexp.MustCompile(`^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s`)
	labelPair  = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// parseExposition reads the Prometheus text format.
func parseExposition(text string) exposition {
	x := exposition{samples: map[string]map[string]map[string]bool{}, types: map[string]string{}}
	for line := range strings.Lines(text) {
		if m := typeLine.FindStringSubmatch(line); m != nil {
			x.types[m[1]] = m[2]
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		labels := x.samples[m[1]]
		if labels == nil {
			labels = map[string]map[string]bool{}
			x.samples[m[1]] = labels
		}
		for _, lp := range labelPair.FindAllStringSubmatch(m[2], -1) {
			if labels[lp[1]] == nil {
				labels[lp[1]] = map[string]bool{}
			}
			labels[lp[1]][lp[2]] = true
		}
	}
	return x
}

// add merges y into x, as two scrape targets add up in Prometheus.
func (x exposition) add(y exposition) {
	for name, labels := range y.samples {
		if x.samples[name] == nil {
			x.samples[name] = map[string]map[string]bool{}
		}
		for l, values := range labels {
			if x.samples[name][l] == nil {
				x.samples[name][l] = map[string]bool{}
			}
			for v := range values {
				x.samples[name][l][v] = true
			}
		}
	}
	for name, typ := range y.types {
		x.types[name] = typ
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
