package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	memcache "github.com/activityd/activityd/adapters/cache/memory"
	rediscache "github.com/activityd/activityd/adapters/cache/redis"
	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// listGate is the memory store whose List can be held at a gate, so a
// test can force a read to straddle a write, and which counts List calls.
type listGate struct {
	*memory.Store
	lists   atomic.Int64
	mu      sync.Mutex
	gate    chan struct{} // nil: List runs freely
	entered chan struct{} // told when a gated List has read the store
}

func (g *listGate) hold() (entered <-chan struct{}, release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gate, g.entered = make(chan struct{}), make(chan struct{}, 64)
	gate := g.gate
	return g.entered, func() { close(gate) }
}

func (g *listGate) List(ctx context.Context, f domain.Filter) (domain.Page, error) {
	g.lists.Add(1)
	page, err := g.Store.List(ctx, f) // read first: the page is what storage held now
	g.mu.Lock()
	gate, entered := g.gate, g.entered
	g.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		<-gate
	}
	return page, err
}

// listView lists q for p the way a surface does, with a minimal view
// ("ids": the list of the page's event ids): the cached bytes on a hit,
// else the page rendered and handed back to the cache.
func listView(ctx context.Context, ev *app.Events, p domain.Principal, q domain.Query) ([]byte, app.CacheResult, error) {
	l, err := ev.List(ctx, p, q, "ids")
	if err != nil {
		return nil, l.Cache, err
	}
	if l.Body != nil {
		return l.Body, l.Cache, nil
	}
	out := make([]string, len(l.Page.Events))
	for i, e := range l.Page.Events {
		out[i] = e.ID.String()
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, l.Cache, err
	}
	l.Keep(b)
	return b, l.Cache, nil
}

func cachedEvents(t *testing.T, cache ports.Cache) (*app.Events, *listGate) {
	t.Helper()
	st := &listGate{Store: memory.New()}
	ev := app.NewEvents(st, ports.SystemClock, domain.DefaultLimits(),
		app.WithCache(app.CacheConfig{Cache: cache, TTL: time.Minute}))
	return ev, st
}

func listIDs(t *testing.T, ev *app.Events, p domain.Principal, q domain.Query) ([]string, app.CacheResult) {
	t.Helper()
	b, res, err := listView(context.Background(), ev, p, q)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out, res
}

func mustRecord(t *testing.T, ev *app.Events, p domain.Principal, user int64, action string) domain.Event {
	t.Helper()
	e, _, err := ev.Record(context.Background(), p, domain.NewEvent{UserID: user, Action: action})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var cacheAdmin = domain.Principal{Name: "test:admin", Scopes: []domain.Scope{domain.ScopeAdmin}}

func TestListViewHitsAndEveryWriteInvalidates(t *testing.T) {
	ev, st := cachedEvents(t, memcache.New(memcache.Options{}))
	ctx := context.Background()
	e1 := mustRecord(t, ev, cacheAdmin, 1, "login")
	q := domain.Query{UserID: "1"}

	steps := []struct {
		name  string
		write func()
		want  int // events listed after the write
	}{
		{"record", func() { mustRecord(t, ev, cacheAdmin, 1, "logout") }, 2},
		{"batch", func() {
			if _, err := ev.RecordBatch(ctx, cacheAdmin, []domain.NewEvent{{UserID: 1, Action: "viewed"}, {UserID: 2, Action: "viewed"}}); err != nil {
				t.Fatal(err)
			}
		}, 3},
		{"transition", func() {
			if _, err := ev.Transition(ctx, cacheAdmin, e1.ID.String(), "IN_PROGRESS"); err != nil {
				t.Fatal(err)
			}
		}, 3},
	}
	got, res := listIDs(t, ev, cacheAdmin, q)
	if res != app.CacheMiss || len(got) != 1 {
		t.Fatalf("first read = %v %s, want 1 event and MISS", got, res)
	}
	for _, s := range steps {
		if _, res := listIDs(t, ev, cacheAdmin, q); res != app.CacheHit {
			t.Fatalf("before %s: repeat read was %s, want HIT", s.name, res)
		}
		s.write()
		got, res := listIDs(t, ev, cacheAdmin, q)
		if res != app.CacheMiss || len(got) != s.want {
			t.Fatalf("after %s: %d events %s, want %d and MISS", s.name, len(got), res, s.want)
		}
	}
	// The transition changed no membership but must still show: status filter.
	if got, _ := listIDs(t, ev, cacheAdmin, domain.Query{UserID: "1", Status: "IN_PROGRESS"}); len(got) != 1 || got[0] != e1.ID.String() {
		t.Fatalf("IN_PROGRESS after transition = %v", got)
	}
	// A write for user 2 leaves user 1's cached read alone but changes the
	// cross-user (admin) listing.
	listIDs(t, ev, cacheAdmin, q)
	all, _ := listIDs(t, ev, cacheAdmin, domain.Query{})
	mustRecord(t, ev, cacheAdmin, 2, "login")
	if _, res := listIDs(t, ev, cacheAdmin, q); res != app.CacheHit {
		t.Fatalf("user 1 after a write of user 2: %s, want HIT", res)
	}
	if got, res := listIDs(t, ev, cacheAdmin, domain.Query{}); res != app.CacheMiss || len(got) != len(all)+1 {
		t.Fatalf("all users after a write: %d events %s, want %d and MISS", len(got), res, len(all)+1)
	}
	// InvalidateAll (retention) drops everything.
	ev.InvalidateAll(ctx)
	if _, res := listIDs(t, ev, cacheAdmin, q); res != app.CacheMiss {
		t.Fatalf("after InvalidateAll: %s, want MISS", res)
	}
	if n := st.lists.Load(); n == 0 {
		t.Fatal("store never listed")
	}
}

// TestKeysNormalised: the same filter spelled differently is one key.
func TestListViewKeysAreNormalised(t *testing.T) {
	ev, _ := cachedEvents(t, memcache.New(memcache.Options{}))
	mustRecord(t, ev, cacheAdmin, 1, "login")
	listIDs(t, ev, cacheAdmin, domain.Query{UserID: "1", Actions: []string{"login", "logout"}})
	for _, q := range []domain.Query{
		{UserID: "1", Actions: []string{"logout", "login"}},
		{UserID: "1", Actions: []string{"LOGIN", "Logout", "login"}, Order: "desc", TimeField: "recorded_at", Limit: "50"},
	} {
		if _, res := listIDs(t, ev, cacheAdmin, q); res != app.CacheHit {
			t.Errorf("%+v: %s, want HIT (same normalised query)", q, res)
		}
	}
	if _, res := listIDs(t, ev, cacheAdmin, domain.Query{UserID: "1", Actions: []string{"login"}}); res != app.CacheMiss {
		t.Errorf("another action set: %s, want MISS", res)
	}
}

// TestReadStraddlingWrite forces the interleaving: a read loads from
// storage before a write commits and stores its result after the write
// bumped the generation. The next read must not see that pre-write result.
func TestReadStraddlingWrite(t *testing.T) {
	ev, st := cachedEvents(t, memcache.New(memcache.Options{}))
	mustRecord(t, ev, cacheAdmin, 1, "login")
	q := domain.Query{UserID: "1"}

	entered, release := st.hold()
	done := make(chan []string)
	go func() {
		var got []string
		b, _, err := listView(context.Background(), ev, cacheAdmin, q)
		if err == nil {
			err = json.Unmarshal(b, &got)
		}
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	<-entered // the slow read has loaded one event and is about to cache it
	st.mu.Lock()
	st.gate = nil // let the write (and later reads) through
	st.mu.Unlock()
	w := mustRecord(t, ev, cacheAdmin, 1, "logout")
	release()
	if stale := <-done; len(stale) != 1 {
		t.Fatalf("the straddling read saw %v, want the one pre-write event", stale)
	}
	got, res := listIDs(t, ev, cacheAdmin, q)
	if len(got) != 2 || got[0] != w.ID.String() {
		t.Fatalf("read after the write = %v (%s): the straddling read's stale result was served", got, res)
	}
}

// TestConcurrentMissesLoadOnce: many readers missing the same key share one
// storage load.
func TestConcurrentMissesLoadOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ev, st := cachedEvents(t, memcache.New(memcache.Options{}))
		mustRecord(t, ev, cacheAdmin, 1, "login")
		entered, release := st.hold()
		before := st.lists.Load()
		const readers = 20
		var wg sync.WaitGroup
		results := make(chan app.CacheResult, readers)
		for range readers {
			wg.Go(func() {
				_, res, err := listView(context.Background(), ev, cacheAdmin, domain.Query{UserID: "1"})
				if err != nil {
					t.Error(err)
				}
				results <- res
			})
		}
		<-entered
		synctest.Wait() // every reader is now waiting on the one load
		release()
		wg.Wait()
		close(results)
		if n := st.lists.Load() - before; n != 1 {
			t.Fatalf("%d concurrent misses made %d storage loads, want 1", readers, n)
		}
		for r := range results {
			if r != app.CacheMiss {
				t.Fatalf("a shared load reported %s, want MISS", r)
			}
		}
	})
}

// TestUnreachableCacheIsBypassed: a cache that cannot be reached costs the
// client nothing: the read is served from storage as BYPASS.
func TestUnreachableCacheIsBypassed(t *testing.T) {
	dead, err := rediscache.Open("redis://127.0.0.1:1/0", rediscache.Options{Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dead.Close() })
	var errs atomic.Int64
	st := memory.New()
	ev := app.NewEvents(st, ports.SystemClock, domain.DefaultLimits(), app.WithCache(app.CacheConfig{
		Cache: dead, TTL: time.Minute, OnError: func(string, error) { errs.Add(1) },
	}))
	for i := range 3 {
		mustRecord(t, ev, cacheAdmin, 1, "login")
		got, res := listIDs(t, ev, cacheAdmin, domain.Query{UserID: "1"})
		if res != app.CacheBypass || len(got) != i+1 {
			t.Fatalf("read %d = %d events %s, want %d and BYPASS", i, len(got), res, i+1)
		}
	}
	if errs.Load() == 0 {
		t.Fatal("cache errors were not reported to OnError")
	}
}

// TestCrossPrincipalIsolation: two users' identical queries never share a
// cached answer.
func TestCrossPrincipalIsolation(t *testing.T) {
	ev, _ := cachedEvents(t, memcache.New(memcache.Options{}))
	alice := domain.Principal{Name: "alice", UserID: 1, Scopes: []domain.Scope{domain.ScopeRead, domain.ScopeWrite}}
	bob := domain.Principal{Name: "bob", UserID: 2, Scopes: []domain.Scope{domain.ScopeRead, domain.ScopeWrite}}
	a := mustRecord(t, ev, alice, 0, "login")
	b := mustRecord(t, ev, bob, 0, "login")
	for i := range 2 { // the second round is served from the cache
		ga, _ := listIDs(t, ev, alice, domain.Query{})
		gb, _ := listIDs(t, ev, bob, domain.Query{})
		if fmt.Sprint(ga) != fmt.Sprint([]string{a.ID.String()}) || fmt.Sprint(gb) != fmt.Sprint([]string{b.ID.String()}) {
			t.Fatalf("round %d: alice sees %v, bob sees %v", i, ga, gb)
		}
	}
	if _, _, err := listView(context.Background(), ev, alice, domain.Query{UserID: "2"}); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("alice listing bob's events: %v, want ErrForbidden", err)
	}
}

// TestEraseInvalidates: an erasure makes the next read of the user's
// events a miss (the cached page held the metadata), other users' stay.
func TestEraseInvalidates(t *testing.T) {
	ev, _ := cachedEvents(t, memcache.New(memcache.Options{}))
	ctx := context.Background()
	if _, _, err := ev.Record(ctx, cacheAdmin, domain.NewEvent{UserID: 1, Action: "login", Metadata: []byte(`{"ip":"10.0.0.1"}`)}); err != nil {
		t.Fatal(err)
	}
	mustRecord(t, ev, cacheAdmin, 2, "login")
	for _, u := range []string{"1", "2"} {
		listIDs(t, ev, cacheAdmin, domain.Query{UserID: u})
		if _, res := listIDs(t, ev, cacheAdmin, domain.Query{UserID: u}); res != app.CacheHit {
			t.Fatalf("user %s: repeat read %s, want HIT", u, res)
		}
	}
	er, err := ev.Erase(ctx, cacheAdmin, app.ErasureQuery{UserID: "1"})
	if err != nil || er.Count != 1 {
		t.Fatalf("Erase = %+v, %v", er, err)
	}
	if _, res := listIDs(t, ev, cacheAdmin, domain.Query{UserID: "1"}); res != app.CacheMiss {
		t.Errorf("user 1 after the erasure: %s, want MISS", res)
	}
	if _, res := listIDs(t, ev, cacheAdmin, domain.Query{UserID: "2"}); res != app.CacheHit {
		t.Errorf("user 2 after user 1's erasure: %s, want HIT", res)
	}
	page, err := ev.List(ctx, cacheAdmin, domain.Query{UserID: "1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if md := string(page.Page.Events[0].Metadata); md != "{}" {
		t.Errorf("listed metadata after the erasure: %s", md)
	}
}
