package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestMetrics: the binary serves /metrics without credentials, counting
// requests by route template and numeric status, and its access log
// lines carry trace and span ids.
func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir, "DATABASE_URL=memory:")
	want(t, call(t, "GET", p.base+"/healthz", "", ""), 200)
	want(t, call(t, "GET", p.base+"/v1/events/00000000-0000-0000-0000-000000000000", "", ""), 401)

	r := call(t, "GET", p.base+"/metrics", "", "")
	want(t, r, 200)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("/metrics Content-Type %q", ct)
	}
	for _, s := range []string{
		`activityd_http_requests_total{method="GET",route="/healthz",status="200"} 1`,
		`activityd_http_requests_total{method="GET",route="/v1/events/{id}",status="401"} 1`,
		`activityd_http_requests_errors_total{method="GET",route="/v1/events/{id}",status="401"} 1`,
		`# TYPE activityd_http_request_duration_seconds histogram`,
	} {
		if !strings.Contains(r.Raw, s) {
			t.Errorf("/metrics lacks %s", s)
		}
	}

	var traced bool
	for line := range strings.Lines(p.logs()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "http request" && m["route"] == "/v1/events/{id}" {
			tid, _ := m["trace_id"].(string)
			sid, _ := m["span_id"].(string)
			traced = len(tid) == 32 && len(sid) == 16
		}
	}
	if !traced {
		t.Errorf("no access log line with trace_id and span_id:\n%s", p.logs())
	}
}
