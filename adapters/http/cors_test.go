package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/ports"
)

// app and evil are a page origin the policy allows and one it does not.
const (
	appOrigin  = "https://app.example.com"
	evilOrigin = "https://evil.example.net"
)

func withCORS(c httpapi.CORS) option {
	return withConfig(func(cfg *httpapi.Config) { cfg.CORS = c })
}

// preflight sends a CORS preflight straight to the server. It bypasses
// the OpenAPI check of fixture.serve: preflights are answered by the CORS
// middleware for every path, not by an operation of the document.
func (f *fixture) preflight(path, origin, method, headers string) *response {
	f.t.Helper()
	req := httptest.NewRequest(http.MethodOptions, "http://activityd.test"+path, nil)
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	req.Header.Set("Access-Control-Request-Method", method)
	if headers != "" {
		req.Header.Set("Access-Control-Request-Headers", headers)
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	return &response{t: f.t, req: request{method: req.Method, path: path}, code: rec.Code, hdr: rec.Header(), body: rec.Body.Bytes()}
}

// accessControl lists the response's Access-Control-* headers.
func accessControl(h http.Header) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			out[k] = strings.Join(v, ", ")
		}
	}
	return out
}

// varies reports whether the response's Vary lists name.
func varies(h http.Header, name string) bool {
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), name) {
				return true
			}
		}
	}
	return false
}

// TestCORSPreflight: a preflight is answered before authentication and
// routing (no 401, no 405), allowing exactly what the policy allows.
func TestCORSPreflight(t *testing.T) {
	policy := httpapi.CORS{AllowedOrigins: []string{appOrigin, "http://localhost:3000"}, MaxAge: 10 * time.Minute}
	f := newFixture(t, withCORS(policy))
	tests := []struct {
		name                  string
		path, origin, method  string
		headers               string
		allowed               bool
		wantHeaders, wantMeth string
	}{
		{"allowed origin, JSON POST with a token", "/api/event", appOrigin, "POST", "authorization,content-type", true, "authorization,content-type", "POST"},
		{"allowed origin, PATCH with idempotency key", "/v1/events/abc", appOrigin, "PATCH", "authorization,content-type,idempotency-key", true, "authorization,content-type,idempotency-key", "PATCH"},
		{"second allowed origin, GET", "/api/events", "http://localhost:3000", "GET", "authorization", true, "authorization", "GET"},
		{"origin compared without case", "/api/events", "HTTPS://APP.example.com", "GET", "", true, "", "GET"},
		{"a path no route serves", "/no/such/path", appOrigin, "GET", "", true, "", "GET"},
		{"origin not allowed", "/api/event", evilOrigin, "POST", "content-type", false, "", ""},
		{"origin of another port", "/api/event", "https://app.example.com:8443", "POST", "content-type", false, "", ""},
		{"origin of another scheme", "/api/event", "http://app.example.com", "POST", "content-type", false, "", ""},
		{"no origin", "/api/event", "", "POST", "content-type", false, "", ""},
		{"method not allowed", "/v1/events/abc", appOrigin, "DELETE", "", false, "", ""},
		{"header not allowed", "/api/event", appOrigin, "POST", "content-type,x-secret", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.preflight(tt.path, tt.origin, tt.method, tt.headers)
			if r.code != http.StatusNoContent {
				t.Fatalf("preflight: %d, want 204 (never 401 or 405); body %s", r.code, r.body)
			}
			if !varies(r.hdr, "Origin") {
				t.Errorf("Vary %q lacks Origin", r.hdr.Values("Vary"))
			}
			ac := accessControl(r.hdr)
			if !tt.allowed {
				if len(ac) != 0 {
					t.Errorf("a refused preflight carries %v", ac)
				}
				return
			}
			want := map[string]string{
				"Access-Control-Allow-Origin":  tt.origin,
				"Access-Control-Allow-Methods": tt.wantMeth,
				"Access-Control-Max-Age":       "600",
			}
			if tt.wantHeaders != "" {
				want["Access-Control-Allow-Headers"] = tt.wantHeaders
			}
			for k, v := range want {
				if ac[k] != v {
					t.Errorf("%s = %q, want %q (all: %v)", k, ac[k], v, ac)
				}
			}
			if _, ok := ac["Access-Control-Allow-Credentials"]; ok {
				t.Errorf("credentials allowed although the policy does not: %v", ac)
			}
		})
	}
	// The access log names the preflight's route, not "unmatched".
	if !strings.Contains(f.logs.String(), `"route":"cors-preflight"`) {
		t.Error("no access log line with route cors-preflight")
	}
}

// TestCORSActualRequest: an actual request from an allowed origin gets
// the origin echoed and the API's headers exposed, errors included; one
// from another origin gets no CORS header and is served as before.
func TestCORSActualRequest(t *testing.T) {
	f := newFixture(t, withCORS(httpapi.CORS{AllowedOrigins: []string{appOrigin}}))
	body := `{"action":"created","occurred_at":"2025-06-01T11:00:00Z"}`
	tests := []struct {
		name   string
		rq     request
		status int
		origin string // Access-Control-Allow-Origin wanted; "": none
	}{
		{"simple GET", request{method: "GET", path: "/v1/events", token: f.u1}, 200, appOrigin},
		{"POST with Location", request{method: "POST", path: "/v1/events", token: f.u1, body: body}, 201, appOrigin},
		{"event-tracking list", request{method: "GET", path: "/api/events?user_id=1", token: f.u1}, 200, appOrigin},
		{"401 readable by the page", request{method: "GET", path: "/v1/events"}, 401, appOrigin},
		{"404 readable by the page", request{method: "GET", path: "/no/such/path"}, 404, appOrigin},
		{"health probe", request{method: "GET", path: "/healthz"}, 200, appOrigin},
		{"origin not allowed", request{method: "GET", path: "/v1/events", token: f.u1}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			origin := appOrigin
			if tt.origin == "" {
				origin = evilOrigin
			}
			tt.rq.header = map[string]string{"Origin": origin}
			r := f.serve(tt.rq).want(tt.status)
			if !varies(r.hdr, "Origin") {
				t.Errorf("Vary %q lacks Origin", r.hdr.Values("Vary"))
			}
			ac := accessControl(r.hdr)
			if tt.origin == "" {
				if len(ac) != 0 {
					t.Errorf("a request from an origin not allowed carries %v", ac)
				}
				return
			}
			if ac["Access-Control-Allow-Origin"] != tt.origin {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", ac["Access-Control-Allow-Origin"], tt.origin)
			}
			exposed := strings.Split(ac["Access-Control-Expose-Headers"], ", ")
			for _, h := range []string{"Location", "Retry-After", "Www-Authenticate", "X-Cache", "Ratelimit-Remaining"} {
				if !slices.Contains(exposed, h) {
					t.Errorf("Access-Control-Expose-Headers %q lacks %s", ac["Access-Control-Expose-Headers"], h)
				}
			}
			if _, ok := ac["Access-Control-Allow-Credentials"]; ok {
				t.Error("credentials allowed although the policy does not")
			}
		})
	}
}

// TestCORSCredentialsAndWildcard: credentials are allowed only when
// configured, with the origin echoed; "*" answers "*".
func TestCORSCredentialsAndWildcard(t *testing.T) {
	t.Run("credentials", func(t *testing.T) {
		f := newFixture(t, withCORS(httpapi.CORS{AllowedOrigins: []string{appOrigin}, AllowCredentials: true}))
		pre := accessControl(f.preflight("/api/event", appOrigin, "POST", "content-type").hdr)
		act := accessControl(f.serve(request{method: "GET", path: "/v1/events", token: f.u1, header: map[string]string{"Origin": appOrigin}}).want(200).hdr)
		for name, ac := range map[string]map[string]string{"preflight": pre, "actual": act} {
			if ac["Access-Control-Allow-Credentials"] != "true" || ac["Access-Control-Allow-Origin"] != appOrigin {
				t.Errorf("%s: %v, want credentials true for %s", name, ac, appOrigin)
			}
		}
	})
	t.Run("any origin", func(t *testing.T) {
		f := newFixture(t, withCORS(httpapi.CORS{AllowedOrigins: []string{"*"}, AllowedMethods: []string{"GET"}, AllowedHeaders: []string{"Authorization"}}))
		if ac := accessControl(f.preflight("/api/events", evilOrigin, "GET", "authorization").hdr); ac["Access-Control-Allow-Origin"] != "*" {
			t.Errorf("preflight %v, want origin *", ac)
		}
		if ac := accessControl(f.preflight("/api/event", evilOrigin, "POST", "content-type").hdr); len(ac) != 0 {
			t.Errorf("Content-Type is not among the configured headers, yet the preflight allows it: %v", ac)
		}
		if ac := accessControl(f.preflight("/v1/events/x", evilOrigin, "PATCH", "").hdr); len(ac) != 0 {
			t.Errorf("PATCH is not among the configured methods, yet the preflight allows it: %v", ac)
		}
	})
}

// TestCORSOffByDefault: with no origin configured nothing changes: no
// Access-Control-* header on any answer, and a preflight is the 405 it
// always was.
func TestCORSOffByDefault(t *testing.T) {
	f := newFixture(t)
	r := f.preflight("/api/event", appOrigin, "POST", "content-type")
	if r.code != http.StatusMethodNotAllowed {
		t.Errorf("preflight without CORS: %d, want 405", r.code)
	}
	if ac := accessControl(r.hdr); len(ac) != 0 {
		t.Errorf("preflight without CORS carries %v", ac)
	}
	for _, rq := range []request{
		{method: "GET", path: "/v1/events", token: f.u1},
		{method: "GET", path: "/v1/events"},
		{method: "GET", path: "/api/events?user_id=1", token: f.u1},
	} {
		rq.header = map[string]string{"Origin": appOrigin}
		if ac := accessControl(f.serve(rq).hdr); len(ac) != 0 {
			t.Errorf("%s %s without CORS carries %v", rq.method, rq.path, ac)
		}
	}
}

// TestCORSValidate: the policies the server refuses, each with the reason.
func TestCORSValidate(t *testing.T) {
	tests := []struct {
		name string
		c    httpapi.CORS
		want string // "" valid
	}{
		{"zero", httpapi.CORS{}, ""},
		{"origins", httpapi.CORS{AllowedOrigins: []string{appOrigin, "http://localhost:3000", "http://[::1]:8080"}}, ""},
		{"wildcard without credentials", httpapi.CORS{AllowedOrigins: []string{"*"}}, ""},
		{"wildcard with credentials", httpapi.CORS{AllowedOrigins: []string{"*"}, AllowCredentials: true}, `"*" cannot be combined with credentials`},
		{"trailing slash", httpapi.CORS{AllowedOrigins: []string{"https://app.example.com/"}}, "without a path or a trailing slash (https://app.example.com)"},
		{"path", httpapi.CORS{AllowedOrigins: []string{"https://app.example.com/ui"}}, "without a path"},
		{"no scheme", httpapi.CORS{AllowedOrigins: []string{"app.example.com"}}, "is not an origin"},
		{"other scheme", httpapi.CORS{AllowedOrigins: []string{"ftp://app.example.com"}}, "is not an origin"},
		{"partial wildcard", httpapi.CORS{AllowedOrigins: []string{"https://*.example.com"}}, "is not an origin"},
		{"lower-case method", httpapi.CORS{AllowedOrigins: []string{appOrigin}, AllowedMethods: []string{"get"}}, "upper case"},
		{"bad header", httpapi.CORS{AllowedOrigins: []string{appOrigin}, AllowedHeaders: []string{"X Bad"}}, "not a header name"},
		{"any header", httpapi.CORS{AllowedOrigins: []string{appOrigin}, AllowedHeaders: []string{"*"}}, ""},
		{"negative max age", httpapi.CORS{AllowedOrigins: []string{appOrigin}, MaxAge: -time.Second}, "non-negative whole number of seconds"},
		{"fractional max age", httpapi.CORS{AllowedOrigins: []string{appOrigin}, MaxAge: 1500 * time.Millisecond}, "whole number of seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantValidate(t, tt.c.Validate(), tt.want)
		})
	}
	defer func() {
		if v := recover(); v == nil || !strings.Contains(v.(string), "credentials") {
			t.Errorf("NewServer with * and credentials: panic %v, want one about credentials", v)
		}
	}()
	newFixture(t, withCORS(httpapi.CORS{AllowedOrigins: []string{"*"}, AllowCredentials: true}))
}

// TestCORSPreflightSkipsLimits: a preflight costs no authentication, so
// it never counts as a failed one: an address that sent many is still
// answered 401, not 429, for its first bad credential.
func TestCORSPreflightSkipsLimits(t *testing.T) {
	f := newFixture(t, withCORS(httpapi.CORS{AllowedOrigins: []string{appOrigin}}), withConfig(func(c *httpapi.Config) {
		c.AuthFailures = ports.Limit{Rate: 1, Period: time.Hour, Burst: 1}
	}))
	for range 5 {
		if r := f.preflight("/v1/events", appOrigin, "GET", "authorization"); r.code != http.StatusNoContent {
			t.Fatalf("preflight: %d", r.code)
		}
	}
	f.serve(request{method: "GET", path: "/v1/events", token: "wrong", header: map[string]string{"Origin": appOrigin}}).problem(http.StatusUnauthorized)
	f.serve(request{method: "GET", path: "/v1/events", token: "wrong", header: map[string]string{"Origin": appOrigin}}).problem(http.StatusTooManyRequests)
}
