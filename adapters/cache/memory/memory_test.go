package memcache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/cachetest"
)

var _ ports.Cache = (*Cache)(nil)

func TestContract(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) ports.Cache { return New(Options{}) })
}

// fakeClock is a settable clock for tests that must not depend on time.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func newWithClock(opts Options) (*Cache, *fakeClock) {
	c := New(opts)
	clk := &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	c.now = clk.Now
	return c, clk
}

func TestDefaults(t *testing.T) {
	c := New(Options{})
	if c.maxEntries != DefaultMaxEntries || c.maxBytes != DefaultMaxBytes || c.maxCounters != DefaultMaxCounters {
		t.Fatalf("defaults: %d entries, %d bytes, %d counters", c.maxEntries, c.maxBytes, c.maxCounters)
	}
}

func TestMaxEntriesEvictsLeastRecentlyUsed(t *testing.T) {
	ctx := t.Context()
	c := New(Options{MaxEntries: 3})
	for _, k := range []string{"a", "b", "c"} {
		if err := c.Set(ctx, k, []byte(k), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := c.Get(ctx, "a"); !ok { // a is now the most recently used
		t.Fatal("a missing before any eviction")
	}
	if err := c.Set(ctx, "d", []byte("d"), time.Minute); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if _, ok, _ := c.Get(ctx, k); ok != want {
			t.Errorf("after eviction, %s present = %v, want %v", k, ok, want)
		}
	}
	if s := c.Stats(); s.Entries != 3 {
		t.Errorf("Stats().Entries = %d, want 3", s.Entries)
	}
}

func TestMaxBytesBound(t *testing.T) {
	ctx := t.Context()
	const maxBytes = 64 << 10
	c := New(Options{MaxBytes: maxBytes})
	v := make([]byte, 1000)
	for i := range 500 {
		if err := c.Set(ctx, fmt.Sprint("key", i), v, time.Minute); err != nil {
			t.Fatal(err)
		}
		if s := c.Stats(); s.Bytes > maxBytes {
			t.Fatalf("after %d Sets: %d bytes, above the bound %d", i+1, s.Bytes, maxBytes)
		}
	}
	s := c.Stats()
	perEntry := int64(len("key499") + len(v) + entryOverhead)
	if s.Entries < int(maxBytes/perEntry)-1 || s.Entries > int(maxBytes/perEntry) {
		t.Errorf("%d entries of about %d bytes held in %d bytes", s.Entries, perEntry, maxBytes)
	}
	// The newest survive.
	if _, ok, _ := c.Get(ctx, "key499"); !ok {
		t.Error("the newest entry was evicted")
	}
	if _, ok, _ := c.Get(ctx, "key0"); ok {
		t.Error("the oldest entry survived")
	}
}

func TestOverwriteAccountsBytes(t *testing.T) {
	ctx := t.Context()
	c := New(Options{})
	_ = c.Set(ctx, "k", make([]byte, 1000), time.Minute)
	_ = c.Set(ctx, "k", make([]byte, 10), time.Minute)
	if s := c.Stats(); s.Entries != 1 || s.Bytes != int64(1+10+entryOverhead) {
		t.Fatalf("after overwrite: %+v", s)
	}
	_, _, _ = c.Get(ctx, "missing")
	c2, clk := newWithClock(Options{})
	_ = c2.Set(ctx, "k", make([]byte, 10), time.Second)
	clk.Add(time.Second)
	if _, ok, _ := c2.Get(ctx, "k"); ok {
		t.Fatal("hit at the expiry instant")
	}
	if s := c2.Stats(); s.Entries != 0 || s.Bytes != 0 {
		t.Fatalf("an expired entry read is not dropped: %+v", s)
	}
}

func TestTooLarge(t *testing.T) {
	ctx := t.Context()
	c := New(Options{MaxBytes: 8 << 10})
	if err := c.Set(ctx, "k", []byte("small"), time.Minute); err != nil {
		t.Fatal(err)
	}
	err := c.Set(ctx, "k", make([]byte, 1<<10), time.Minute)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Set of a value above MaxBytes/8: %v, want ErrTooLarge", err)
	}
	if _, ok, _ := c.Get(ctx, "k"); ok {
		t.Fatal("a refused overwrite left the old value")
	}
}

func TestCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	c := New(Options{})
	if err := c.Set(ctx, "k", nil, time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("Set: %v", err)
	}
	if _, _, err := c.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get: %v", err)
	}
	if _, err := c.Generations(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Generations: %v", err)
	}
	if err := c.Bump(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Bump: %v", err)
	}
}

func TestMaxCountersBound(t *testing.T) {
	ctx := t.Context()
	c := New(Options{MaxCounters: 10})
	for i := range 100 {
		if err := c.Bump(ctx, fmt.Sprint("user:", i), "global"); err != nil {
			t.Fatal(err)
		}
		if s := c.Stats(); s.Counters > 10 {
			t.Fatalf("%d counters, above the bound 10", s.Counters)
		}
	}
	// "global", bumped every time, stays; early users were evicted.
	g, _ := c.Generations(ctx, "global", "user:0", "never")
	s := c.Stats()
	if s.Floor == 0 || g[1] != s.Floor || g[2] != s.Floor {
		t.Fatalf("evicted and never-bumped counters read %d and %d, want the floor %d", g[1], g[2], s.Floor)
	}
	if _, ok := c.counters["global"]; !ok {
		t.Fatal("the most recently used counter was evicted")
	}
}

// TestEvictedCounterRestartsAbove uses a frozen clock: after many quick
// bumps a counter is far ahead of the clock, and only the floor keeps its
// next incarnation above its last value.
func TestEvictedCounterRestartsAbove(t *testing.T) {
	c, _ := newWithClock(Options{MaxCounters: 2})
	cachetest.ForgottenCounter(t, c, "user:1", func(t *testing.T) {
		if err := c.Bump(t.Context(), "other:1", "other:2"); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.counters["user:1"]; ok {
			t.Fatal("user:1 not evicted")
		}
	})
}

// TestEvictedCounterReadsFloor: while a counter is evicted, readers see
// the floor, at or above its last value, never a number some older cached
// entry may be stored under.
func TestEvictedCounterReadsFloor(t *testing.T) {
	ctx := t.Context()
	c, clk := newWithClock(Options{MaxCounters: 1})
	_ = c.Bump(ctx, "a")
	_ = c.Bump(ctx, "a")
	g, _ := c.Generations(ctx, "a")
	_ = c.Bump(ctx, "b") // evicts a
	ga, _ := c.Generations(ctx, "a")
	if ga[0] < g[0] {
		t.Fatalf("evicted counter reads %d, below its last value %d", ga[0], g[0])
	}
	clk.Add(-time.Hour) // a clock going back changes nothing
	_ = c.Bump(ctx, "a")
	ga2, _ := c.Generations(ctx, "a")
	if ga2[0] <= ga[0] {
		t.Fatalf("recreated counter %d, not above %d", ga2[0], ga[0])
	}
}

func TestCounterStartsFromClock(t *testing.T) {
	c, clk := newWithClock(Options{})
	_ = c.Bump(t.Context(), "a")
	g, _ := c.Generations(t.Context(), "a")
	if want := clk.Now().UnixMicro() + 1; g[0] != want {
		t.Fatalf("new counter = %d, want the clock in µs + 1 = %d", g[0], want)
	}
}

func TestTTLWithFakeClock(t *testing.T) {
	ctx := t.Context()
	c, clk := newWithClock(Options{})
	_ = c.Set(ctx, "k", []byte("v"), 10*time.Second)
	clk.Add(10*time.Second - time.Nanosecond)
	if _, ok, _ := c.Get(ctx, "k"); !ok {
		t.Fatal("miss just before the TTL")
	}
	clk.Add(time.Nanosecond)
	if _, ok, _ := c.Get(ctx, "k"); ok {
		t.Fatal("hit at the TTL")
	}
}

func BenchmarkGetParallel(b *testing.B) {
	c := New(Options{})
	ctx := context.Background()
	for i := range 1000 {
		_ = c.Set(ctx, fmt.Sprint("k", i), make([]byte, 512), time.Hour)
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_, _, _ = c.Get(ctx, fmt.Sprint("k", i%1000))
			i++
		}
	})
}
