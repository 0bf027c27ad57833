package app_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	memcache "github.com/activityd/activityd/adapters/cache/memory"
	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// cuttable is a replica's view of a shared cache that the test can cut
// off, the way a broken network path to Redis fails one replica alone.
type cuttable struct {
	ports.Cache
	cut atomic.Bool
}

var errCut = errors.New("cut off from the cache")

func (c *cuttable) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if c.cut.Load() {
		return nil, false, errCut
	}
	return c.Cache.Get(ctx, key)
}

func (c *cuttable) Set(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	if c.cut.Load() {
		return errCut
	}
	return c.Cache.Set(ctx, key, v, ttl)
}

func (c *cuttable) Generations(ctx context.Context, keys ...string) ([]int64, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	return c.Cache.Generations(ctx, keys...)
}

func (c *cuttable) Bump(ctx context.Context, keys ...string) error {
	if c.cut.Load() {
		return errCut
	}
	return c.Cache.Bump(ctx, keys...)
}

type replica struct {
	ev    *app.Events
	cache *cuttable
}

// replicas returns n replicas of the app over one store and one cache,
// each with its own Coherence running, as n processes would have.
func replicas(t *testing.T, n int, lease time.Duration, withCoherence bool) []replica {
	t.Helper()
	st := memory.New()
	shared := memcache.New(memcache.Options{})
	out := make([]replica, n)
	for i := range out {
		c := &cuttable{Cache: shared}
		cfg := app.CacheConfig{Cache: c, TTL: time.Hour}
		if withCoherence {
			cfg.Coherence = app.NewCoherence(c, st, app.CoherenceConfig{Lease: lease})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); cfg.Coherence.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })
		}
		out[i] = replica{ev: app.NewEvents(st, ports.SystemClock, domain.DefaultLimits(), app.WithCache(cfg)), cache: c}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// TestCoherenceOneReplicaCutOff: replica A cannot reach the cache; it
// records an event for a user whose list replica B has cached. B's next
// read, begun after A answered, includes the event; without Coherence it
// is a stale hit. When A's path comes back, A caches again within a poll,
// not after the hour-long TTL.
func TestCoherenceOneReplicaCutOff(t *testing.T) {
	for _, withCoherence := range []bool{true, false} {
		name := map[bool]string{true: "coherence", false: "without"}[withCoherence]
		t.Run(name, func(t *testing.T) {
			const lease = 200 * time.Millisecond
			rs := replicas(t, 2, lease, withCoherence)
			a, b := rs[0], rs[1]
			if withCoherence {
				waitFor(t, "B trusts the cache", 5*time.Second, func() bool {
					_, res := listIDs(t, b.ev, cacheAdmin, domain.Query{UserID: "7"})
					return res == app.CacheHit
				})
			}
			mustRecord(t, b.ev, cacheAdmin, 7, "login")
			listIDs(t, b.ev, cacheAdmin, domain.Query{UserID: "7"})
			if _, res := listIDs(t, b.ev, cacheAdmin, domain.Query{UserID: "7"}); res != app.CacheHit {
				t.Fatalf("B's second read is %s, want HIT", res)
			}

			a.cache.cut.Store(true)
			start := time.Now()
			e := mustRecord(t, a.ev, cacheAdmin, 7, "logout")
			took := time.Since(start)
			got, res := listIDs(t, b.ev, cacheAdmin, domain.Query{UserID: "7"})
			if !withCoherence {
				if slices.Contains(got, e.ID.String()) {
					t.Fatalf("without Coherence B's read was fresh (%s): the test no longer shows the defect", res)
				}
				return
			}
			if !slices.Contains(got, e.ID.String()) {
				t.Fatalf("B served a list without A's event (%s): stale", res)
			}
			if took < lease {
				t.Fatalf("A answered its write after %v, before the lease of %v had passed", took, lease)
			}
			if _, res := listIDs(t, a.ev, cacheAdmin, domain.Query{UserID: "7"}); res != app.CacheBypass {
				t.Fatalf("A, cut off, read %s; want BYPASS", res)
			}

			a.cache.cut.Store(false)
			back := waitFor(t, "A caches again", 5*time.Second, func() bool {
				_, res := listIDs(t, a.ev, cacheAdmin, domain.Query{UserID: "7"})
				return res == app.CacheHit
			})
			t.Logf("A's first HIT %v after its path to the cache came back", back)
			got, _ = listIDs(t, a.ev, cacheAdmin, domain.Query{UserID: "7"})
			if !slices.Contains(got, e.ID.String()) {
				t.Fatal("A's hit after recovery lacks its own event")
			}
		})
	}
}

// TestCoherenceNoTrustWithoutPoll: until a poll of the ledger succeeds,
// reads bypass the cache.
func TestCoherenceNoTrustWithoutPoll(t *testing.T) {
	st := memory.New()
	c := app.NewCoherence(memcache.New(memcache.Options{}), st, app.CoherenceConfig{})
	ev := app.NewEvents(st, ports.SystemClock, domain.DefaultLimits(),
		app.WithCache(app.CacheConfig{Cache: memcache.New(memcache.Options{}), TTL: time.Hour, Coherence: c}))
	mustRecord(t, ev, cacheAdmin, 1, "login")
	for range 3 {
		if _, res := listIDs(t, ev, cacheAdmin, domain.Query{UserID: "1"}); res != app.CacheBypass {
			t.Fatalf("read before any poll: %s, want BYPASS", res)
		}
	}
	if c.Trusted() {
		t.Fatal("trusted before Run")
	}
}
