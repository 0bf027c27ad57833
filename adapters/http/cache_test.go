package httpapi_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	memcache "github.com/activityd/activityd/adapters/cache/memory"
	rediscache "github.com/activityd/activityd/adapters/cache/redis"
	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/testenv"
)

type newCacheFunc func(t *testing.T) ports.Cache

func memCache(*testing.T) ports.Cache { return memcache.New(memcache.Options{}) }

func redisCache(t *testing.T) ports.Cache {
	url, prefix := testenv.RedisURL(t)
	c, err := rediscache.Open(url, rediscache.Options{KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// cachedFixture serves the API over store and cache with a 1-minute TTL.
func cachedFixture(t *testing.T, newStore newStoreFunc, cache ports.Cache) *fixture {
	t.Helper()
	st := newStore(t)
	f := &fixture{t: t, logs: &syncBuffer{}, tokens: app.NewTokens(st, ports.SystemClock)}
	log := slog.New(slog.NewJSONHandler(f.logs, nil))
	f.srv = httpapi.NewServer(httpapi.Config{
		Events: app.NewEvents(st, ports.SystemClock, domain.DefaultLimits(),
			app.WithCache(app.CacheConfig{Cache: cache, TTL: time.Minute, Logger: log})),
		Auth:    f.tokens,
		Storage: st,
		Logger:  log,
	})
	f.admin = f.token(0, domain.ScopeAdmin)
	f.u1 = f.token(1, domain.ScopeRead, domain.ScopeWrite)
	f.u2 = f.token(2, domain.ScopeRead, domain.ScopeWrite)
	return f
}

func TestCachedReads(t *testing.T) {
	stores := map[string]newStoreFunc{"memory": memoryStore, "sqlite": sqliteStore, "postgres": pgStore}
	caches := map[string]newCacheFunc{"in-process": memCache, "redis": redisCache}
	for sn, ns := range stores {
		for cn, nc := range caches {
			t.Run(sn+"/"+cn, func(t *testing.T) { cacheSuite(t, ns, nc) })
		}
	}
}

// cacheSuite proves, on every cached route: a repeat read is a HIT with the
// same body; every kind of write is visible to the next read; two
// principals never share an answer.
func cacheSuite(t *testing.T, newStore newStoreFunc, newCache newCacheFunc) {
	f := cachedFixture(t, newStore, newCache(t))
	seed := f.do("POST", "/v1/events", f.u1, `{"action":"login"}`).want(http.StatusCreated).event()

	routes := []struct{ name, path, token string }{
		{"v1 list", "/v1/events?action=login&action=logout&limit=100", f.u1},
		{"v1 user list", "/v1/users/1/events", f.u1},
		{"v1 admin list", "/v1/events", f.admin},
		{"event-tracking", "/api/events?user_id=1", f.u1},
		{"activity-logger", "/api/logs/1", f.u1},
	}
	read := func(path, token string) *response {
		t.Helper()
		return f.do("GET", path, token, "").want(http.StatusOK)
	}
	writes := []struct {
		name  string
		write func()
		saw   func(body []byte) bool // the next read shows the write
	}{
		{"POST /v1/events", func() {
			f.do("POST", "/v1/events", f.u1, `{"action":"logout","metadata":{"mark":"post-v1"}}`).want(http.StatusCreated)
		}, contains("post-v1")},
		{"POST /v1/events/batch", func() {
			f.do("POST", "/v1/events/batch", f.u1, `{"events":[{"action":"login","metadata":{"mark":"batch"}}]}`).want(http.StatusOK)
		}, contains("batch")},
		{"PATCH /v1/events/{id}", func() {
			f.do("PATCH", "/v1/events/"+seed.ID, f.u1, `{"status":"IN_PROGRESS"}`).want(http.StatusOK)
		}, contains("IN_PROGRESS")},
		{"POST /api/event", func() {
			f.do("POST", "/api/event", f.u1, `{"user_id":1,"event_action_timestamp":"2025-10-10T18:30:00Z","action":"login","metadata":{"mark":"tracking"}}`).want(http.StatusCreated)
		}, contains("tracking")},
		{"POST /api/logs/", func() {
			f.do("POST", "/api/logs/", f.u1, `{"action":"LOGIN","metadata":{"mark":"logger"}}`).want(http.StatusCreated)
		}, contains("logger")},
	}
	for _, w := range writes {
		for _, rt := range routes {
			first := read(rt.path, rt.token)
			again := read(rt.path, rt.token)
			if got := again.hdr.Get("X-Cache"); got != "HIT" || !bytes.Equal(first.body, again.body) {
				t.Fatalf("before %s, %s: repeat read X-Cache=%q, same body %v; want a HIT with the same body",
					w.name, rt.name, got, bytes.Equal(first.body, again.body))
			}
		}
		w.write()
		for _, rt := range routes {
			r := read(rt.path, rt.token)
			if r.hdr.Get("X-Cache") == "HIT" {
				t.Fatalf("after %s, %s was served from the cache", w.name, rt.name)
			}
			if w.name == "PATCH /v1/events/{id}" && rt.name == "event-tracking" {
				continue // that surface does not render a status
			}
			if !w.saw(r.body) {
				t.Fatalf("after %s, %s (X-Cache %s) is stale: %s", w.name, rt.name, r.hdr.Get("X-Cache"), r.body)
			}
		}
	}

	// Two principals asking the same question get their own answers, also
	// when the first answer is cached.
	f.do("POST", "/v1/events", f.u2, `{"action":"login","metadata":{"mark":"user2"}}`).want(http.StatusCreated)
	for i := range 2 {
		a, b := read("/v1/events", f.u1), read("/v1/events", f.u2)
		if bytes.Contains(a.body, []byte("user2")) || !bytes.Contains(b.body, []byte("user2")) || bytes.Contains(b.body, []byte(seed.ID)) {
			t.Fatalf("round %d: principals' answers crossed:\nuser1 %s\nuser2 %s", i, a.body, b.body)
		}
	}
	f.do("GET", "/api/logs/1", f.u2, "").want(http.StatusForbidden) // authorised before the cache
}

func contains(s string) func([]byte) bool {
	return func(b []byte) bool { return bytes.Contains(b, []byte(s)) }
}

// TestRedisOutage stops a private Redis mid-run: requests keep succeeding
// from storage (BYPASS); after a restart, HITs come back by themselves.
func TestRedisOutage(t *testing.T) {
	addr, stop, restart := testenv.StartRedis(t)
	c, err := rediscache.Open("redis://"+addr+"/0", rediscache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	f := cachedFixture(t, memoryStore, c)
	f.do("POST", "/v1/events", f.u1, `{"action":"login"}`).want(http.StatusCreated)
	xcache := func() string { return f.do("GET", "/v1/events", f.u1, "").want(http.StatusOK).hdr.Get("X-Cache") }
	if got := xcache() + " " + xcache(); got != "MISS HIT" {
		t.Fatalf("with Redis up: %s, want MISS HIT", got)
	}

	stop()
	for i := range 5 {
		if got := xcache(); got != "BYPASS" {
			t.Fatalf("read %d with Redis down: X-Cache %s, want BYPASS", i, got)
		}
	}
	if !bytes.Contains([]byte(f.logs.String()), []byte("cache unavailable")) {
		t.Fatal("no warning logged for the outage")
	}
	if n := bytes.Count([]byte(f.logs.String()), []byte("cache unavailable")); n != 1 {
		t.Fatalf("%d outage warnings for 5 failing reads, want 1 (rate-limited)", n)
	}

	restart()
	deadline := time.Now().Add(10 * time.Second)
	for xcache() != "HIT" {
		if time.Now().After(deadline) {
			t.Fatal("no HIT within 10s of Redis coming back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWriteWhoseInvalidationFails: a write whose invalidation cannot reach
// Redis (writes paused, reads still answered) must not let the pre-write
// answer be served afterwards: this replica bypasses the cache instead.
func TestWriteWhoseInvalidationFails(t *testing.T) {
	addr, _, _ := testenv.StartRedis(t) // private: CLIENT PAUSE affects every client of the server
	c, err := rediscache.Open("redis://"+addr+"/0", rediscache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	f := cachedFixture(t, memoryStore, c)
	f.do("POST", "/v1/events", f.u1, `{"action":"login"}`).want(http.StatusCreated)
	f.do("GET", "/v1/events", f.u1, "").want(http.StatusOK) // cached: one event
	if got := f.do("GET", "/v1/events", f.u1, "").hdr.Get("X-Cache"); got != "HIT" {
		t.Fatalf("X-Cache %s, want HIT", got)
	}

	ctx := context.Background()
	if err := c.Client().Do(ctx, "CLIENT", "PAUSE", "2000", "WRITE").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	f.do("POST", "/v1/events", f.u1, `{"action":"logout","metadata":{"mark":"unannounced"}}`).want(http.StatusCreated)
	r := f.do("GET", "/v1/events", f.u1, "").want(http.StatusOK)
	if !bytes.Contains(r.body, []byte("unannounced")) {
		t.Fatalf("the read after a write whose invalidation failed (X-Cache %s) is stale: %s", r.hdr.Get("X-Cache"), r.body)
	}
	if got := r.hdr.Get("X-Cache"); got != "BYPASS" {
		t.Fatalf("X-Cache %s, want BYPASS while the cache cannot be trusted", got)
	}
	_ = c.Client().Do(ctx, "CLIENT", "UNPAUSE").Err()
}
