package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	httpapi "github.com/activityd/activityd/adapters/http"
	memlimit "github.com/activityd/activityd/adapters/limit/memory"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// countingAuth counts the credentials its Authenticator was asked about:
// a store query each, for API tokens not cached.
type countingAuth struct {
	httpapi.Authenticator
	n atomic.Int64
}

func (c *countingAuth) Authenticate(ctx context.Context, secret string) (domain.Principal, error) {
	c.n.Add(1)
	return c.Authenticator.Authenticate(ctx, secret)
}

// metricsConfig gives c a real MeterProvider and serves its metrics at
// /metrics.
func metricsConfig(t *testing.T, c *httpapi.Config) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes))
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	c.MeterProvider = mp
	c.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// from sends a request from the client at remote (ip:port), with a token
// (none if "") and extra headers.
func (f *fixture) from(remote, method, path, token string, header ...string) *response {
	f.t.Helper()
	req := httptest.NewRequest(method, "http://activityd.test"+path, nil)
	req.RemoteAddr = remote
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	return f.serveRaw(req)
}

func wantTooMany(t *testing.T, r *response, slug string, maxWait int) {
	t.Helper()
	r.want(http.StatusTooManyRequests)
	if ct := r.hdr.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("429 with Content-Type %q", ct)
	}
	if typ, _ := r.object()["type"].(string); !strings.HasSuffix(typ, "#"+slug) {
		t.Errorf("429 of type %q, want #%s", typ, slug)
	}
	if s, err := strconv.Atoi(r.hdr.Get("Retry-After")); err != nil || s < 1 || s > maxWait {
		t.Errorf("429 with Retry-After %q, want 1..%d seconds", r.hdr.Get("Retry-After"), maxWait)
	}
}

// TestAuthFailureLimit: an address that failed authentication its burst
// of times is answered 429 before its credentials are looked up, on every
// surface, with the address in the log; other addresses are not affected,
// and successes never count.
func TestAuthFailureLimit(t *testing.T) {
	var auth *countingAuth
	f := newFixture(t, withConfig(func(c *httpapi.Config) {
		auth = &countingAuth{Authenticator: c.Auth}
		c.Auth = auth
		c.AuthFailures = ports.Limit{Rate: 1, Period: time.Minute, Burst: 3}
		metricsConfig(t, c)
	}))
	const attacker, other = "203.0.113.9:1000", "198.51.100.7:2000"
	// Successes from an address never count against it.
	for range 10 {
		f.from(other, "GET", "/v1/users/1/events", f.u1).want(200)
	}
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"unknown token", "adt_unknown_0123456789abcdef", 401},
		{"no credentials", "", 401},
		{"unknown token again", "adt_unknown_0123456789abcdef", 401},
	} {
		f.from(attacker, "GET", "/v1/events", tc.token).want(tc.want)
	}
	looked := auth.n.Load()
	for _, tc := range []struct{ name, method, path, token string }{
		{"another unknown token", "GET", "/v1/events", "adt_another_0123456789abcdef"},
		{"a valid token from the blocked address", "GET", "/v1/users/1/events", f.u1},
		{"event-tracking surface", "GET", "/api/events?user_id=1", "adt_x_0123456789abcdef"},
		{"activity-logger surface", "GET", "/api/logs/1", "adt_x_0123456789abcdef"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantTooMany(t, f.from(attacker, tc.method, tc.path, tc.token), "too-many-failures", 60)
		})
	}
	if n := auth.n.Load(); n != looked {
		t.Errorf("%d credentials looked up for requests refused 429; want none", n-looked)
	}
	// Another address is not affected; nor are probes and /metrics.
	f.from(other, "GET", "/v1/users/1/events", f.u1).want(200)
	f.from(other, "GET", "/v1/events", "adt_unknown_0123456789abcdef").want(401)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		f.from(attacker, "GET", path, "").want(200)
	}

	logs := f.logs.String()
	if !strings.Contains(logs, `"status":429`) || !strings.Contains(logs, `"client":"203.0.113.9"`) {
		t.Errorf("no access log line of a 429 naming the client: %s", logs)
	}
	if n := strings.Count(logs, "client address refused after repeated failed authentications"); n != 1 {
		t.Errorf("%d warnings of the address refused, want 1 (when it ran out)", n)
	}
	metrics := string(f.do("GET", "/metrics", "", "").want(200).body)
	for _, want := range []string{"activityd_http_auth_failures_total 4", "activityd_http_auth_throttled_total 4"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(metrics, "203.0.113.9") {
		t.Error("/metrics names a client address")
	}
}

// TestAuthFailureLimitBehindProxy: behind a trusted proxy, failures count
// per forwarded client, so one client's failures do not block the others
// behind the same proxy; a forwarded header from an untrusted peer is
// ignored, so a client cannot escape its budget by sending one.
func TestAuthFailureLimitBehindProxy(t *testing.T) {
	f := newFixture(t, withConfig(func(c *httpapi.Config) {
		c.AuthFailures = ports.Limit{Rate: 1, Period: time.Minute, Burst: 2}
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	}))
	const proxy, direct = "10.0.0.2:3000", "198.51.100.7:2000"
	bad := "adt_unknown_0123456789abcdef"
	for range 2 {
		f.from(proxy, "GET", "/v1/events", bad, "X-Forwarded-For", "203.0.113.9").want(401)
	}
	wantTooMany(t, f.from(proxy, "GET", "/v1/events", bad, "X-Forwarded-For", "203.0.113.9"), "too-many-failures", 60)
	f.from(proxy, "GET", "/v1/users/1/events", f.u1, "X-Forwarded-For", "203.0.113.10").want(200)
	// A client's own header is a lie the proxy appends to: still blocked.
	wantTooMany(t, f.from(proxy, "GET", "/v1/events", bad, "X-Forwarded-For", "1.2.3.4, 203.0.113.9"), "too-many-failures", 60)
	// An untrusted peer forging headers is counted as itself.
	for i := range 2 {
		f.from(direct, "GET", "/v1/events", bad, "X-Forwarded-For", "192.0.2."+strconv.Itoa(i)).want(401)
	}
	wantTooMany(t, f.from(direct, "GET", "/v1/events", bad, "X-Forwarded-For", "192.0.2.77"), "too-many-failures", 60)
	if logs := f.logs.String(); !strings.Contains(logs, `"client":"203.0.113.9"`) {
		t.Errorf("the access log does not name the forwarded client: %s", logs)
	}
}

// TestAuthFailureLimitOff: with the zero limit, failures are never
// limited.
func TestAuthFailureLimitOff(t *testing.T) {
	f := newFixture(t)
	for range 50 {
		f.from("203.0.113.9:1000", "GET", "/v1/events", "adt_unknown_0123456789abcdef").want(401)
	}
}

// keyRecorder is a limiter that remembers the keys it was asked about.
type keyRecorder struct {
	ports.Limiter
	mu   sync.Mutex
	keys map[string]bool
}

func (k *keyRecorder) Allow(ctx context.Context, key string, l ports.Limit) (ports.Decision, error) {
	k.mu.Lock()
	k.keys[key] = true
	k.mu.Unlock()
	return k.Limiter.Allow(ctx, key, l)
}

// TestRateLimit: each principal gets its burst, then 429 rate-limited
// with Retry-After, on every surface; the RateLimit-* headers count down;
// another principal is not affected; probes and /metrics are never
// limited; the limiter's key is the principal's name, never the secret.
func TestRateLimit(t *testing.T) {
	lim := &keyRecorder{Limiter: memlimit.New(memlimit.Options{}), keys: map[string]bool{}}
	f := newFixture(t, withConfig(func(c *httpapi.Config) {
		c.RateLimiter = lim
		c.RateLimit = ports.Limit{Rate: 1, Period: time.Minute, Burst: 3}
		metricsConfig(t, c)
	}))
	for i, tc := range []struct{ method, path string }{
		{"GET", "/v1/users/1/events"},
		{"GET", "/api/events?user_id=1"},
		{"GET", "/api/logs/1"},
	} {
		r := f.do(tc.method, tc.path, f.u1, "").want(200)
		if r.hdr.Get("RateLimit-Limit") != "3" || r.hdr.Get("RateLimit-Remaining") != strconv.Itoa(2-i) {
			t.Errorf("%s %s: RateLimit-Limit %q, -Remaining %q; want 3 and %d", tc.method, tc.path,
				r.hdr.Get("RateLimit-Limit"), r.hdr.Get("RateLimit-Remaining"), 2-i)
		}
		if reset, err := strconv.Atoi(r.hdr.Get("RateLimit-Reset")); err != nil || reset < 1 || reset > 60*(i+1) {
			t.Errorf("RateLimit-Reset %q, want 1..%d", r.hdr.Get("RateLimit-Reset"), 60*(i+1))
		}
	}
	for _, tc := range []struct{ name, method, path string }{
		{"canonical", "GET", "/v1/users/1/events"},
		{"event-tracking surface", "GET", "/api/events?user_id=1"},
		{"activity-logger surface", "GET", "/api/logs/1"},
		{"a write", "POST", "/v1/events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(tc.method, tc.path, f.u1, "")
			wantTooMany(t, r, "rate-limited", 60)
			if r.hdr.Get("RateLimit-Remaining") != "0" {
				t.Errorf("429 with RateLimit-Remaining %q, want 0", r.hdr.Get("RateLimit-Remaining"))
			}
		})
	}
	if n := len(f.storedEvents()); n != 0 {
		t.Errorf("a refused write stored %d events", n)
	}
	f.do("GET", "/v1/users/2/events", f.u2, "").want(200)
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json"} {
		for range 5 {
			r := f.do("GET", path, f.u1, "").want(200)
			if r.hdr.Get("RateLimit-Limit") != "" {
				t.Errorf("%s carries rate limit headers", path)
			}
		}
	}
	if !lim.keys[f.u2Name] {
		t.Errorf("limiter keys %v lack u2's principal name %q", lim.keys, f.u2Name)
	}
	for k := range lim.keys {
		if strings.Contains(k, "adt_") || strings.Contains(k, f.u1[4:]) || strings.Contains(k, f.u2[4:]) {
			t.Errorf("limiter key %q holds a secret", k)
		}
	}
	if m := string(f.do("GET", "/metrics", "", "").want(200).body); !strings.Contains(m, "activityd_http_rate_limited_total 4") {
		t.Error("/metrics lacks activityd_http_rate_limited_total 4")
	}
}

// failingLimiter always fails, as a limiter on an unreachable Redis.
type failingLimiter struct{ n atomic.Int64 }

func (l *failingLimiter) Allow(context.Context, string, ports.Limit) (ports.Decision, error) {
	l.n.Add(1)
	return ports.Decision{}, errors.New("redislimit: allow: dial tcp 127.0.0.1:6379: connect: connection refused")
}

// TestRateLimiterFailsOpen: a limiter that fails lets every request
// through, counted, with at most one warning.
func TestRateLimiterFailsOpen(t *testing.T) {
	lim := &failingLimiter{}
	f := newFixture(t, withConfig(func(c *httpapi.Config) {
		c.RateLimiter = lim
		c.RateLimit = ports.Limit{Rate: 1, Period: time.Minute, Burst: 1}
		metricsConfig(t, c)
	}))
	for range 20 {
		r := f.do("GET", "/v1/users/1/events", f.u1, "").want(200)
		if r.hdr.Get("RateLimit-Limit") != "" {
			t.Fatal("rate limit headers without a decision")
		}
	}
	if lim.n.Load() != 20 {
		t.Errorf("limiter asked %d times, want 20", lim.n.Load())
	}
	if n := strings.Count(f.logs.String(), "rate limiter unavailable"); n != 1 {
		t.Errorf("%d warnings of the limiter's failure for 20 requests, want 1", n)
	}
	if m := string(f.do("GET", "/metrics", "", "").want(200).body); !strings.Contains(m, "activityd_http_rate_limiter_errors_total 20") {
		t.Error("/metrics lacks activityd_http_rate_limiter_errors_total 20")
	}
}
