package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/domain"
)

// anonNet holds httptest's client address (192.0.2.1).
var anonNet = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}

func withAnonymous(scopes ...domain.Scope) option {
	return withConfig(func(c *httpapi.Config) { c.Anonymous = httpapi.Anonymous{Scopes: scopes, Networks: anonNet} })
}

// withMetrics serves the server's metrics at /metrics.
func withMetrics(t *testing.T) option {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes))
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return withConfig(func(c *httpapi.Config) {
		c.MeterProvider = mp
		c.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	})
}

const anonEvent = `{"user_id":6,"event_action_timestamp":"2025-06-01T11:00:00Z","action":"deleted","metadata":{"device":"iPhone 14"}}`

// fromAddr sends rq as if from the client address remote.
func (f *fixture) fromAddr(remote string, rq request) *response {
	f.t.Helper()
	req := newRawRequest(rq.method, rq.path, rq.body)
	req.RemoteAddr = remote
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	if rq.token != "" {
		req.Header.Set("Authorization", "Bearer "+rq.token)
	}
	return f.serveRaw(req)
}

// TestAnonymousTracking: with the migration setting, a request without a
// credential from an allowed network is served on the event-tracking
// routes alone, with the scopes named, and counted and logged.
func TestAnonymousTracking(t *testing.T) {
	f := newFixture(t, withAnonymous(domain.ScopeRead, domain.ScopeWrite), withMetrics(t))
	post := request{method: "POST", path: "/api/event", body: anonEvent, header: map[string]string{"User-Agent": "old-gin-client/1.0"}}

	{ // allowed
		var created struct{ ID string }
		if err := json.Unmarshal(f.serve(post).want(http.StatusCreated).body, &created); err != nil || created.ID == "" {
			t.Fatalf("POST /api/event: %v", err)
		}
		post.path = "/api/event/"
		f.serve(post).want(http.StatusCreated)
		for _, path := range []string{"/api/events?user_id=6", "/api/events/?user_id=6"} {
			var list []struct {
				ID     string `json:"id"`
				UserID int64  `json:"user_id"`
			}
			if err := json.Unmarshal(f.do("GET", path, "", "").want(http.StatusOK).body, &list); err != nil {
				t.Fatal(err)
			}
			if len(list) != 2 || list[0].ID != created.ID || list[0].UserID != 6 {
				t.Errorf("GET %s: %+v, want the two events of user 6, %s first", path, list, created.ID)
			}
		}
		// The status history names who recorded it: the client's address.
		e := f.do("GET", "/v1/events/"+created.ID, f.admin, "").want(http.StatusOK).event()
		if by := e.StatusHistory[0].By; by != "anonymous:192.0.2.1" {
			t.Errorf("recorded by %q, want anonymous:192.0.2.1", by)
		}
	}

	{ // one user at a time
		p := f.do("GET", "/api/events", "", "").problem(http.StatusForbidden)
		if !strings.Contains(p.Detail, "give user_id") {
			t.Errorf("detail %q", p.Detail)
		}
	}

	{ // outside the networks
		for _, rq := range []request{
			{method: "POST", path: "/api/event", body: anonEvent},
			{method: "GET", path: "/api/events?user_id=6"},
		} {
			f.fromAddr("198.51.100.7:4711", rq).problem(http.StatusUnauthorized)
		}
	}

	{ // other routes still need a credential
		for _, rq := range []request{
			{method: "GET", path: "/v1/events?user_id=6"},
			{method: "GET", path: "/v1/users/6/events"},
			{method: "POST", path: "/v1/events", body: `{"user_id":6,"action":"created","occurred_at":"2025-06-01T11:00:00Z"}`},
			{method: "GET", path: "/api/logs/6/"},
			{method: "POST", path: "/api/logs/", body: `{"action":"LOGIN","metadata":{}}`},
			{method: "PATCH", path: "/api/logs/update/1/", body: `{"status":"DONE"}`},
		} {
			f.serve(rq).problem(http.StatusUnauthorized)
		}
	}

	{ // a bad credential is still 401
		for _, h := range []string{"Bearer wrong", "Basic dXNlcjpwYXNz", "Bearer", ""} {
			rq := post
			rq.header = map[string]string{"Authorization": h}
			req := newRawRequest(rq.method, rq.path, rq.body)
			req.Header["Authorization"] = []string{h} // set even when empty
			f.serveRaw(req).problem(http.StatusUnauthorized)
		}
	}

	{ // counted and logged
		body := string(f.do("GET", "/metrics", "", "").want(http.StatusOK).body)
		for _, want := range []string{
			// By route template, as chi names it (without the
			// trailing slash): two POSTs, three GETs (the 403 included).
			`activityd_http_anonymous_requests_total{route="/api/event"} 2`,
			`activityd_http_anonymous_requests_total{route="/api/events"} 3`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		var logged int
		for line := range strings.Lines(f.logs.String()) {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil || !strings.Contains(m["msg"].(string), "without a credential") {
				continue
			}
			logged++
			if m["client"] != "192.0.2.1" || m["route"] == nil || m["method"] == nil {
				t.Errorf("log line %s lacks client, route or method", line)
			}
			if m["route"] == "/api/event" && m["user_agent"] != "old-gin-client/1.0" {
				t.Errorf("log line %s: user_agent %v", line, m["user_agent"])
			}
		}
		if logged != 5 {
			t.Errorf("%d log lines for requests without a credential, want 5", logged)
		}
	}
}

// TestAnonymousScopesLimited: the request gets the scopes named and no
// more.
func TestAnonymousScopesLimited(t *testing.T) {
	f := newFixture(t, withAnonymous(domain.ScopeWrite))
	f.do("POST", "/api/event", "", anonEvent).want(http.StatusCreated)
	p := f.do("GET", "/api/events?user_id=6", "", "").problem(http.StatusForbidden)
	if !strings.Contains(p.Detail, "events:read") {
		t.Errorf("detail %q does not name the missing scope", p.Detail)
	}

	f = newFixture(t, withAnonymous(domain.ScopeRead))
	f.do("POST", "/api/event", "", anonEvent).problem(http.StatusForbidden)
	f.do("GET", "/api/events?user_id=6", "", "").want(http.StatusOK)
}

// TestAnonymousOffByDefault: without the setting, no request goes
// without a credential.
func TestAnonymousOffByDefault(t *testing.T) {
	f := newFixture(t)
	f.do("POST", "/api/event", "", anonEvent).problem(http.StatusUnauthorized)
	f.do("GET", "/api/events?user_id=6", "", "").problem(http.StatusUnauthorized)
}

// TestAnonymousBehindProxy: the client address is the one a trusted proxy
// forwarded for, never one a client claims.
func TestAnonymousBehindProxy(t *testing.T) {
	f := newFixture(t, withAnonymous(domain.ScopeRead), withConfig(func(c *httpapi.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	}))
	get := func(xff string) request {
		return request{method: "GET", path: "/api/events?user_id=6", header: map[string]string{"X-Forwarded-For": xff}}
	}
	f.fromAddr("10.1.2.3:4711", get("192.0.2.9")).want(http.StatusOK)
	f.fromAddr("10.1.2.3:4711", get("203.0.113.5")).problem(http.StatusUnauthorized)
	f.fromAddr("10.1.2.3:4711", get("192.0.2.9, 203.0.113.5")).problem(http.StatusUnauthorized)
	f.fromAddr("203.0.113.5:4711", get("192.0.2.9")).problem(http.StatusUnauthorized) // not a trusted proxy: its header is not believed
	f.fromAddr("10.1.2.3:4711", request{method: "GET", path: "/api/events?user_id=6"}).problem(http.StatusUnauthorized)
}

// TestAnonymousValidate: what the server refuses.
func TestAnonymousValidate(t *testing.T) {
	tests := []struct {
		name string
		a    httpapi.Anonymous
		want string // "" valid
	}{
		{"zero", httpapi.Anonymous{}, ""},
		{"read and write", httpapi.Anonymous{Scopes: []domain.Scope{domain.ScopeRead, domain.ScopeWrite}, Networks: anonNet}, ""},
		{"admin", httpapi.Anonymous{Scopes: []domain.Scope{domain.ScopeWrite, domain.ScopeAdmin}, Networks: anonNet}, `scope "admin" cannot be given`},
		{"no networks", httpapi.Anonymous{Scopes: []domain.Scope{domain.ScopeRead}}, "scopes need networks"},
		{"networks alone", httpapi.Anonymous{Networks: anonNet}, "networks without scopes"},
		{"invalid network", httpapi.Anonymous{Scopes: []domain.Scope{domain.ScopeRead}, Networks: []netip.Prefix{{}}}, "not a CIDR range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantValidate(t, tt.a.Validate(), tt.want)
		})
	}
	defer func() {
		if v := recover(); v == nil || !strings.Contains(v.(string), "admin") {
			t.Errorf("NewServer with admin: panic %v, want one naming admin", v)
		}
	}()
	newFixture(t, withAnonymous(domain.ScopeAdmin))
}

// wantValidate checks a Validate result: nil when want is "", else an
// error containing want.
func wantValidate(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("Validate: %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Validate = %v, want an error containing %q", err, want)
	}
}
