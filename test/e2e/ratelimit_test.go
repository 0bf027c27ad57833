package e2e

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/activityd/activityd/test/binary"
	"github.com/activityd/activityd/test/testenv"
)

// createToken makes an API token with the CLI and returns its secret.
func createToken(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	out, errOut, code := binary.Run(t, dir, env, append([]string{"token", "create"}, args...)...)
	if code != 0 {
		t.Fatalf("token create %v: exit %d: %s", args, code, errOut)
	}
	return strings.TrimSpace(out)
}

// TestRateLimitAcrossReplicas: two replicas sharing PostgreSQL and Redis
// hold one token to one budget: with a burst of 10, requests spread over
// both are refused 429 once 10 were served in all, whichever replica
// answers; a second token has a budget of its own.
func TestRateLimitAcrossReplicas(t *testing.T) {
	dbURL, _ := testenv.PostgresSchema(t)
	redisURL, prefix := testenv.RedisURL(t)
	t.Cleanup(func() { deleteLimiterKeys(t, redisURL, prefix) })
	dir := t.TempDir()
	env := []string{"DATABASE_URL=" + dbURL, "BOOTSTRAP_ADMIN_TOKEN=rl-admin-token-0123456789abcdef"}
	if _, errOut, code := binary.Run(t, dir, env, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, errOut)
	}
	tokA := createToken(t, dir, env, "--user", "1", "--scope", "events:read,events:write")
	tokB := createToken(t, dir, env, "--user", "2", "--scope", "events:read,events:write")
	const burst = 10
	env = append(env, "REDIS_URL="+redisURL, "CACHE_PREFIX="+prefix, "CACHE_TIMEOUT=1s",
		"RATE_LIMIT=1", "RATE_LIMIT_BURST="+strconv.Itoa(burst))
	replicas := []*binary.Proc{binary.Start(t, dir, env...), binary.Start(t, t.TempDir(), env...)}
	for _, p := range replicas {
		if !strings.Contains(p.Logs(), "shared by every replica through Redis") {
			t.Fatalf("a replica does not say its rate limit is shared:\n%s", p.Logs())
		}
	}

	// 2×burst requests of token A, alternating between the replicas (each
	// alone would allow its own burst: all of them). One request's worth
	// comes back every second, so the refused ones are counted against
	// the time the run took, not expected to the request.
	began := time.Now()
	var allowed, refused []int
	for i := range 2 * burst {
		p := replicas[i%2]
		r := binary.Call(t, "GET", p.Base+"/v1/users/1/events", tokA, "")
		switch r.Status {
		case http.StatusOK:
			allowed = append(allowed, i+1)
		case http.StatusTooManyRequests:
			refused = append(refused, i+1)
			wantRateLimited(t, r)
		default:
			t.Fatalf("request %d on replica %d: %d %s", i+1, i%2, r.Status, r.Raw)
		}
	}
	refills := int(math.Ceil(time.Since(began).Seconds()))
	if len(allowed) < burst || allowed[burst-1] != burst {
		t.Fatalf("requests allowed %v: the first %d should all be", allowed, burst)
	}
	if len(allowed) > burst+refills {
		t.Fatalf("%d of %d requests across two replicas allowed within %d s under a shared burst of %d at 1/s: "+
			"the replicas do not share the budget (allowed %v)", len(allowed), 2*burst, refills, burst, allowed)
	}
	t.Logf("allowed %v, refused %v (run took %v)", allowed, refused, time.Since(began))

	// Token B is not affected, on either replica.
	for i := range burst {
		binary.Want(t, binary.Call(t, "GET", replicas[i%2].Base+"/v1/users/2/events", tokB, ""), http.StatusOK)
	}
	// Probes and metrics are never limited.
	for _, p := range replicas {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			binary.Want(t, binary.Call(t, "GET", p.Base+path, tokA, ""), http.StatusOK)
		}
	}
}

func wantRateLimited(t *testing.T, r binary.Response) {
	t.Helper()
	typ, _ := r.Body["type"].(string)
	if !strings.HasSuffix(typ, "#rate-limited") || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("429 %s %s, want a rate-limited problem", r.Header.Get("Content-Type"), r.Raw)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("429 with Retry-After %q", r.Header.Get("Retry-After"))
	}
	if r.Header.Get("RateLimit-Limit") != "10" || r.Header.Get("RateLimit-Remaining") != "0" {
		t.Errorf("429 with RateLimit-Limit %q, RateLimit-Remaining %q; want 10 and 0",
			r.Header.Get("RateLimit-Limit"), r.Header.Get("RateLimit-Remaining"))
	}
}

// deleteLimiterKeys deletes the limiter's budgets ("rate:" + prefix ...),
// which testenv's cleanup of prefix does not reach.
func deleteLimiterKeys(t *testing.T, redisURL, prefix string) {
	o, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Error(err)
		return
	}
	c := redis.NewClient(o)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys, err := c.Keys(ctx, "rate:"+prefix+"*").Result()
	if err == nil && len(keys) > 0 {
		err = c.Del(ctx, keys...).Err()
	}
	if err != nil {
		t.Errorf("delete the limiter's keys: %v", err)
	}
}

// TestAuthFailureLimitE2E: with the defaults, the 31st failed
// authentication from one address within a minute is answered 429 with
// Retry-After before any lookup, also with a valid token, and logged with
// the address; a forged X-Forwarded-For (no proxy is trusted by default)
// changes nothing.
func TestAuthFailureLimitE2E(t *testing.T) {
	const admin = "afl-admin-token-0123456789abcdef"
	p := binary.Start(t, t.TempDir(), "DATABASE_URL=memory:", "BOOTSTRAP_ADMIN_TOKEN="+admin)
	for i := range 30 {
		r := binary.Do(t, "GET", p.Base+"/v1/events", "Bearer adt_guess_"+strconv.Itoa(i), "")
		binary.Want(t, r, http.StatusUnauthorized)
	}
	for _, tc := range []struct {
		name, auth, xff string
	}{
		{"another guess", "Bearer adt_guess_31", ""},
		{"a forged X-Forwarded-For", "Bearer adt_guess_32", "203.0.113.9"},
		{"a valid token from the same address", "Token " + admin, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", p.Base+"/v1/events", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", tc.auth)
			if tc.xff != "" {
				req.Header.Set("X-Forwarded-For", tc.xff)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("status %d, want 429", res.StatusCode)
			}
			if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
				t.Errorf("Retry-After %q, want 1..60", res.Header.Get("Retry-After"))
			}
		})
	}
	logs := p.Logs()
	if !strings.Contains(logs, `"status":429`) || !strings.Contains(logs, `"client":"127.0.0.1"`) ||
		!strings.Contains(logs, "client address refused after repeated failed authentications") {
		t.Errorf("no log of the refused address:\n%s", logs)
	}
	if strings.Contains(logs, `"client":"203.0.113.9"`) {
		t.Error("a forged X-Forwarded-For was believed")
	}
	m := binary.Call(t, "GET", p.Base+"/metrics", "", "")
	for _, want := range []string{"activityd_http_auth_failures_total 30", "activityd_http_auth_throttled_total 3"} {
		if !strings.Contains(m.Raw, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
