package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/test/binary"
)

// TestMetrics: the binary serves /metrics without credentials, counting
// requests by route template and numeric status, events recorded by
// action, transitions by result and the in-process counting job; its
// access log lines carry trace and span ids.
func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	p := binary.Start(t, dir, "DATABASE_URL=memory:")
	admin := p.BootstrapToken(t)
	binary.Want(t, binary.Call(t, "GET", p.Base+"/healthz", "", ""), 200)
	binary.Want(t, binary.Call(t, "GET", p.Base+"/v1/events/00000000-0000-0000-0000-000000000000", "", ""), 401)
	var id string
	for _, action := range []string{"login", "login", "upload_file"} {
		r := binary.Call(t, "POST", p.Base+"/v1/events", admin, fmt.Sprintf(`{"user_id":5,"action":%q}`, action))
		binary.Want(t, r, 201)
		id, _ = r.Body["id"].(string)
	}
	binary.Want(t, binary.Call(t, "PATCH", p.Base+"/v1/events/"+id, admin, `{"status":"IN_PROGRESS"}`), 200)
	binary.Want(t, binary.Call(t, "PATCH", p.Base+"/v1/events/"+id, admin, `{"status":"PENDING"}`), 409)
	for range 2 {
		binary.Want(t, binary.Call(t, "GET", p.Base+"/v1/events?user_id=5", admin, ""), 200)
	}
	// The in-process runner computed the latest closed window at start;
	// the admin's run computes it again, in the background.
	binary.Want(t, binary.Call(t, "POST", p.Base+"/v1/activity-counts/runs", admin, ""), 202)
	var r binary.Response
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r = binary.Call(t, "GET", p.Base+"/metrics", "", "")
		binary.Want(t, r, 200)
		if n, _ := sample(r.Raw, `activityd_count_windows_computed_total`); n >= 2 || time.Now().After(deadline) {
			break
		}
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("/metrics Content-Type %q", ct)
	}
	for _, s := range []string{
		`activityd_http_requests_total{method="GET",route="/healthz",status="200"} 1`,
		`activityd_http_requests_total{method="GET",route="/v1/events/{id}",status="401"} 1`,
		`activityd_http_requests_errors_total{method="GET",route="/v1/events/{id}",status="401"} 1`,
		`activityd_http_requests_total{method="PATCH",route="/v1/events/{id}",status="409"} 1`,
		`# TYPE activityd_http_request_duration_seconds histogram`,
		`activityd_events_recorded_total{action="login"} 2`,
		`activityd_events_recorded_total{action="upload_file"} 1`,
		`activityd_event_transitions_total{from="PENDING",result="ok",to="IN_PROGRESS"} 1`,
		`activityd_event_transitions_total{from="IN_PROGRESS",result="invalid",to="PENDING"} 1`,
		`activityd_cache_requests_total{result="MISS",view="v1"} 1`,
		`activityd_cache_requests_total{result="HIT",view="v1"} 1`,
		`activityd_count_runs_total{result="ok"} 2`,
		`activityd_count_windows_computed_total 2`,
		`activityd_count_run_duration_seconds_count{result="ok"} 2`,
		`activityd_count_lag_seconds 0`,
	} {
		if !strings.Contains(r.Raw, s+"\n") {
			t.Errorf("/metrics lacks %s", s)
		}
	}
	// No label holds an id, a user id or a raw path.
	if strings.Contains(r.Raw, id) || regexp.MustCompile(`(route|path)="/v1/events/[0-9a-f]`).MatchString(r.Raw) {
		t.Errorf("/metrics leaks an id or a raw path")
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", r.Raw)
	}

	var traced bool
	for line := range strings.Lines(p.Logs()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "http request" && m["route"] == "/v1/events/{id}" {
			tid, _ := m["trace_id"].(string)
			sid, _ := m["span_id"].(string)
			traced = len(tid) == 32 && len(sid) == 16
		}
	}
	if !traced {
		t.Errorf("no access log line with trace_id and span_id:\n%s", p.Logs())
	}
}

// TestMetricsAddr: with METRICS_ADDR, /metrics moves to a listener of its
// own and the API port no longer serves it.
func TestMetricsAddr(t *testing.T) {
	p := binary.Start(t, t.TempDir(), "DATABASE_URL=memory:", "METRICS_ADDR=127.0.0.1:0")
	binary.Want(t, binary.Call(t, "GET", p.Base+"/healthz", "", ""), 200)
	if r := binary.Call(t, "GET", p.Base+"/metrics", "", ""); r.Status != 404 {
		t.Errorf("API port /metrics: %d, want 404", r.Status)
	}
	body := scrape(t, metricsURL(t, p))
	if !strings.Contains(body, `activityd_http_requests_total{method="GET",route="/healthz",status="200"} 1`) {
		t.Errorf("METRICS_ADDR /metrics lacks the API's requests:\n%s", body)
	}
}

// metricsURL is the /metrics URL of p's METRICS_ADDR listener, from its
// "serving metrics" log line.
func metricsURL(t *testing.T, p *binary.Proc) string {
	t.Helper()
	for line := range strings.Lines(p.Logs()) {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving metrics" {
			return "http://" + rec.Addr + "/metrics"
		}
	}
	t.Fatalf("no \"serving metrics\" log line:\n%s", p.Logs())
	return ""
}

// scrape GETs a /metrics URL.
func scrape(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, b)
	}
	return string(b)
}

// sample is the value of the series exactly as written (name with its
// labels) in a scrape, and whether it is there.
func sample(body, series string) (float64, bool) {
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}
