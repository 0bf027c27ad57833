package memcache

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/cachetest"
	"github.com/activityd/activityd/test/testenv"
)

var _ ports.Cache = (*Cache)(nil)

func TestContract(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) ports.Cache { return newTest(t, Options{}) })
}

// newTest is New, closed at the test's end: a cache whose sweep timer
// is armed stays reachable, and would skew the heap measurements of the
// tests that follow.
func newTest(t testing.TB, opts Options) *Cache {
	c := New(opts)
	t.Cleanup(c.Close)
	return c
}

// newWithClock is newTest on a fake clock, which only the test moves.
func newWithClock(t *testing.T, opts Options) (*Cache, *testenv.Clock) {
	c := newTest(t, opts)
	clk := testenv.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	c.now = clk.Now
	return c, clk
}

func TestDefaults(t *testing.T) {
	c := newTest(t, Options{})
	if c.maxEntries != DefaultMaxEntries || c.maxBytes != DefaultMaxBytes || c.maxCounters != DefaultMaxCounters {
		t.Fatalf("defaults: %d entries, %d bytes, %d counters", c.maxEntries, c.maxBytes, c.maxCounters)
	}
}

func TestMaxEntriesEvictsLeastRecentlyUsed(t *testing.T) {
	ctx := t.Context()
	c := newTest(t, Options{MaxEntries: 3})
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
	c := newTest(t, Options{MaxBytes: maxBytes})
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
	c := newTest(t, Options{})
	_ = c.Set(ctx, "k", make([]byte, 1000), time.Minute)
	_ = c.Set(ctx, "k", make([]byte, 10), time.Minute)
	// 10 bytes take a 16-byte allocation.
	if s := c.Stats(); s.Entries != 1 || s.Bytes != int64(1+16+entryOverhead) {
		t.Fatalf("after overwrite: %+v, want 1 entry of %d bytes", s, 1+16+entryOverhead)
	}
	_, _, _ = c.Get(ctx, "missing")
	c2, clk := newWithClock(t, Options{})
	_ = c2.Set(ctx, "k", make([]byte, 10), time.Second)
	clk.Advance(time.Second)
	if _, ok, _ := c2.Get(ctx, "k"); ok {
		t.Fatal("hit at the expiry instant")
	}
	if s := c2.Stats(); s.Entries != 0 || s.Bytes != 0 {
		t.Fatalf("an expired entry read is not dropped: %+v", s)
	}
}

func TestTooLarge(t *testing.T) {
	ctx := t.Context()
	c := newTest(t, Options{MaxBytes: 8 << 10})
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
	c := newTest(t, Options{})
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
	c := newTest(t, Options{MaxCounters: 10})
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
	c, _ := newWithClock(t, Options{MaxCounters: 2})
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
	c, clk := newWithClock(t, Options{MaxCounters: 1})
	_ = c.Bump(ctx, "a")
	_ = c.Bump(ctx, "a")
	g, _ := c.Generations(ctx, "a")
	_ = c.Bump(ctx, "b") // evicts a
	ga, _ := c.Generations(ctx, "a")
	if ga[0] < g[0] {
		t.Fatalf("evicted counter reads %d, below its last value %d", ga[0], g[0])
	}
	clk.Advance(-time.Hour) // a clock going back changes nothing
	_ = c.Bump(ctx, "a")
	ga2, _ := c.Generations(ctx, "a")
	if ga2[0] <= ga[0] {
		t.Fatalf("recreated counter %d, not above %d", ga2[0], ga[0])
	}
}

func TestCounterStartsFromClock(t *testing.T) {
	c, clk := newWithClock(t, Options{})
	_ = c.Bump(t.Context(), "a")
	g, _ := c.Generations(t.Context(), "a")
	if want := clk.Now().UnixMicro() + 1; g[0] != want {
		t.Fatalf("new counter = %d, want the clock in µs + 1 = %d", g[0], want)
	}
}

func TestTTLWithFakeClock(t *testing.T) {
	ctx := t.Context()
	c, clk := newWithClock(t, Options{})
	_ = c.Set(ctx, "k", []byte("v"), 10*time.Second)
	clk.Advance(10*time.Second - time.Nanosecond)
	if _, ok, _ := c.Get(ctx, "k"); !ok {
		t.Fatal("miss just before the TTL")
	}
	clk.Advance(time.Nanosecond)
	if _, ok, _ := c.Get(ctx, "k"); ok {
		t.Fatal("hit at the TTL")
	}
}

// BenchmarkCache measures the cache's paths at a list page's size (15 KB
// under a 90-byte key, bounded at 24 MiB) from parallel goroutines: a hit
// in a working set that fits; a miss and its Set (every key new, so the
// cache evicts all along); and the cached list under writes (90% hits,
// 10% Sets of a new key, as a bumped generation makes).
func BenchmarkCache(b *testing.B) {
	const workingSet = 1000
	value := make([]byte, 15_000)
	key := func(i int64) string {
		return fmt.Sprintf("activityd:list:v1:%020d:events?limit=50&order=desc&user=%020d", i, i)
	}
	for _, bc := range []struct {
		name string
		op   func(c *Cache, i int64, n *atomic.Int64) error
	}{
		{"hit", func(c *Cache, i int64, _ *atomic.Int64) error {
			_, _, err := c.Get(context.Background(), key(i%workingSet))
			return err
		}},
		{"miss+set", func(c *Cache, _ int64, n *atomic.Int64) error {
			k := key(workingSet + n.Add(1))
			if _, ok, err := c.Get(context.Background(), k); ok || err != nil {
				return fmt.Errorf("want a miss: %v, %w", ok, err)
			}
			return c.Set(context.Background(), k, value, time.Minute)
		}},
		{"mixed", func(c *Cache, i int64, n *atomic.Int64) error {
			if i%10 == 9 {
				return c.Set(context.Background(), key(workingSet+n.Add(1)), value, time.Minute)
			}
			_, _, err := c.Get(context.Background(), key(i%workingSet))
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := New(Options{MaxBytes: 24 << 20})
			b.Cleanup(c.Close)
			for i := range int64(workingSet) {
				if err := c.Set(context.Background(), key(i), value, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
			var n, seq atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := seq.Add(1_000_003)
				for pb.Next() {
					i++
					if err := bc.op(c, i, &n); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// TestExpiredValuesAreFreed: values past their TTL leave the cache, and
// their bytes the count, without any further write or read: the sweep
// timer frees them.
func TestExpiredValuesAreFreed(t *testing.T) {
	ctx := t.Context()
	c, clk := newWithClock(t, Options{SweepInterval: 5 * time.Millisecond})
	for i := range 1000 {
		ttl := 10 * time.Second
		if i%2 == 0 {
			ttl = time.Hour
		}
		if err := c.Set(ctx, fmt.Sprint("k", i), make([]byte, 1000), ttl); err != nil {
			t.Fatal(err)
		}
	}
	full := c.Stats()
	clk.Advance(10 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Entries != 500 {
		if time.Now().After(deadline) {
			t.Fatalf("expired values still held 10 s after their TTL: %+v (full: %+v)", c.Stats(), full)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s := c.Stats(); s.Bytes != full.Bytes/2 {
		t.Fatalf("after the sweep: %d bytes counted, want half of %d", s.Bytes, full.Bytes)
	}
	clk.Advance(time.Hour)
	for c.Stats().Bytes != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("expired values still held: %+v", c.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWritesFreeExpiredValues: without the timer (after Close), a write
// frees every value that expired, not only the least recently used ones
// the bounds would evict.
func TestWritesFreeExpiredValues(t *testing.T) {
	ctx := t.Context()
	c, clk := newWithClock(t, Options{})
	c.Close()
	for i := range 100 {
		_ = c.Set(ctx, fmt.Sprint("short", i), []byte("v"), time.Second)
	}
	_ = c.Set(ctx, "long", []byte("v"), time.Hour)
	clk.Advance(time.Second)
	_ = c.Set(ctx, "new", []byte("v"), time.Hour)
	if s := c.Stats(); s.Entries != 2 {
		t.Fatalf("after a write past the TTL: %d values held, want 2 (the expired freed)", s.Entries)
	}
	// An overwrite moves the expiry: the old one no longer frees it.
	_ = c.Set(ctx, "long", []byte("w"), 2*time.Hour)
	clk.Advance(90 * time.Minute)
	_ = c.Set(ctx, "other", []byte("v"), time.Hour)
	if _, ok, _ := c.Get(ctx, "long"); !ok {
		t.Fatal("an overwritten value expired at its first TTL")
	}
}

// TestBytesAreHonest fills caches to their byte bound with values of
// several sizes and checks that the bound holds at every step and that
// the heap the cache holds (measured after a collection) is within 15%
// of the bytes it counts: the bound is on memory, not on payload.
func TestBytesAreHonest(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value int
		key   int
	}{
		{"tiny values", 1, 20},
		{"small values", 200, 60},
		{"list pages", 15_000, 90},
		{"odd sizes", 1500, 70},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const maxBytes = 16 << 20
			ctx := t.Context()
			value := make([]byte, tc.value)
			pad := strings.Repeat("k", tc.key-8)
			before := heapInUse()
			c := newTest(t, Options{MaxBytes: maxBytes, MaxEntries: 1 << 20, SweepInterval: time.Hour})
			n := 0
			for i := 0; n == 0 || c.Stats().Entries == i; i++ {
				// The key is the caller's allocation, kept by the cache.
				if err := c.Set(ctx, fmt.Sprintf("%s%08d", pad, i), value, time.Hour); err != nil {
					t.Fatal(err)
				}
				if s := c.Stats(); s.Bytes > maxBytes {
					t.Fatalf("after %d Sets: %d bytes counted, above the bound %d", i+1, s.Bytes, maxBytes)
				}
				if c.Stats().Entries < i+1 {
					n = i + 1 // the first eviction: the cache is full
				}
			}
			s := c.Stats()
			held := heapInUse() - before
			ratio := float64(held) / float64(s.Bytes)
			t.Logf("%d values of %d bytes under %d-byte keys: %d bytes counted, %d held on the heap (%.3f)",
				s.Entries, tc.value, tc.key, s.Bytes, held, ratio)
			if s.Bytes < maxBytes*9/10 {
				t.Errorf("a full cache counts %d bytes, well under its bound %d", s.Bytes, maxBytes)
			}
			if ratio > 1.15 {
				t.Errorf("the heap holds %d bytes for %d counted (%.2fx): the count is not honest", held, s.Bytes, ratio)
			}
			if ratio < 0.85 {
				t.Errorf("the heap holds %d bytes for %d counted (%.2fx): the count is far too high", held, s.Bytes, ratio)
			}
			runtime.KeepAlive(c)
		})
	}
}

// TestCounterBytesAreHonest: generation counters count what they hold
// on the heap too (within 15%), and a cache of counters only keeps to
// MaxBytes.
func TestCounterBytesAreHonest(t *testing.T) {
	ctx := t.Context()
	const maxBytes = 8 << 20
	before := heapInUse()
	c := newTest(t, Options{MaxBytes: maxBytes, MaxCounters: 1 << 20})
	for i := range 200_000 {
		if err := c.Bump(ctx, fmt.Sprintf("user:%d", i)); err != nil {
			t.Fatal(err)
		}
		if s := c.Stats(); s.Bytes > maxBytes {
			t.Fatalf("after %d Bumps: %d bytes counted, above the bound %d", i+1, s.Bytes, maxBytes)
		}
	}
	s := c.Stats()
	held := heapInUse() - before
	ratio := float64(held) / float64(s.Bytes)
	t.Logf("%d counters: %d bytes counted, %d held on the heap (%.3f)", s.Counters, s.Bytes, held, ratio)
	if ratio > 1.15 || ratio < 0.85 {
		t.Errorf("the heap holds %d bytes for %d counted (%.2fx), not within 15%%", held, s.Bytes, ratio)
	}
	if s.Floor == 0 {
		t.Error("counters evicted for bytes without raising the floor")
	}
	runtime.KeepAlive(c)
}

// heapInUse is the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
