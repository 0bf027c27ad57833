// Package cachetest is the contract suite every cache adapter must pass:
// an adapter's test calls Run with a function that opens a fresh, empty
// cache, and the suite checks what ports.Cache promises — misses, round
// trips that copy, expiry, overwrites, binary and large values, and
// generation counters that only grow, under concurrency too.
//
// ForgottenCounter checks the rule that keeps generation keys sound when
// an adapter forgets a counter (by expiry or eviction): the counter never
// takes a value again that it had before.
package cachetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/activityd/activityd/ports"
)

// Run runs the contract suite. open must return a fresh, empty cache for
// each call (an adapter sharing a server uses a new key prefix) and
// register its own cleanup with t.Cleanup. Subtests do not run in
// parallel.
func Run(t *testing.T, open func(t *testing.T) ports.Cache) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, c ports.Cache)
	}{
		{"GetMiss", testGetMiss},
		{"SetGetRoundTrip", testRoundTrip},
		{"ValuesAreCopied", testCopied},
		{"EmptyValue", testEmptyValue},
		{"Overwrite", testOverwrite},
		{"Expiry", testExpiry},
		{"NonPositiveTTL", testNonPositiveTTL},
		{"LargeValue", testLargeValue},
		{"BinaryValue", testBinaryValue},
		{"OddKeys", testOddKeys},
		{"GenerationsNeverBumped", testGenerationsNeverBumped},
		{"GenerationsEmpty", testGenerationsEmpty},
		{"BumpIncrements", testBumpIncrements},
		{"BumpSeveral", testBumpSeveral},
		{"BumpEmpty", testBumpEmpty},
		{"BumpConcurrent", testBumpConcurrent},
		{"BumpWhileReading", testBumpWhileReading},
		{"GenerationsManyInOrder", testGenerationsMany},
		{"ValuesAndCountersApart", testValuesAndCountersApart},
		{"ConcurrentSetGet", testConcurrentSetGet},
		{"GetLatest", testGetLatest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := open(t)
			if c == nil {
				t.Fatal("open returned a nil cache")
			}
			tc.fn(t, c)
		})
	}
}

// ttl is long enough that no value expires during a test that does not
// mean it to, and short enough for any adapter's limits.
const ttl = time.Minute

func mustSet(t *testing.T, c ports.Cache, key string, value []byte, ttl time.Duration) {
	t.Helper()
	if err := c.Set(t.Context(), key, value, ttl); err != nil {
		t.Fatalf("Set(%q, %d bytes, %v): %v", key, len(value), ttl, err)
	}
}

func mustGet(t *testing.T, c ports.Cache, key string) ([]byte, bool) {
	t.Helper()
	v, ok, err := c.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if !ok && v != nil {
		t.Errorf("Get(%q) missed but returned %d bytes", key, len(v))
	}
	return v, ok
}

func wantValue(t *testing.T, c ports.Cache, key string, want []byte) {
	t.Helper()
	got, ok := mustGet(t, c, key)
	if !ok {
		t.Fatalf("Get(%q) missed, want %s", key, show(want))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %s, want %s", key, show(got), show(want))
	}
}

func wantMiss(t *testing.T, c ports.Cache, key string) {
	t.Helper()
	if got, ok := mustGet(t, c, key); ok {
		t.Fatalf("Get(%q) = %s, want a miss", key, show(got))
	}
}

// show abbreviates a value for failure messages.
func show(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%q... (%d bytes)", b[:40], len(b))
	}
	return fmt.Sprintf("%q", b)
}

func generations(t *testing.T, c ports.Cache, keys ...string) []int64 {
	t.Helper()
	g, err := c.Generations(t.Context(), keys...)
	if err != nil {
		t.Fatalf("Generations(%q): %v", keys, err)
	}
	if len(g) != len(keys) {
		t.Fatalf("Generations(%q) returned %d values, want %d", keys, len(g), len(keys))
	}
	return g
}

func generation(t *testing.T, c ports.Cache, key string) int64 {
	t.Helper()
	return generations(t, c, key)[0]
}

func bump(t *testing.T, c ports.Cache, keys ...string) {
	t.Helper()
	if err := c.Bump(t.Context(), keys...); err != nil {
		t.Fatalf("Bump(%q): %v", keys, err)
	}
}

func testGetMiss(t *testing.T, c ports.Cache) {
	wantMiss(t, c, "never-set")
}

func testRoundTrip(t *testing.T, c ports.Cache) {
	mustSet(t, c, "k", []byte("value"), ttl)
	wantValue(t, c, "k", []byte("value"))
	wantValue(t, c, "k", []byte("value")) // a read does not consume it
	wantMiss(t, c, "K")                   // keys are case-sensitive
}

func testCopied(t *testing.T, c ports.Cache) {
	v := []byte("original")
	mustSet(t, c, "k", v, ttl)
	copy(v, "MUTATED!")
	wantValue(t, c, "k", []byte("original"))

	got, _ := mustGet(t, c, "k")
	if len(got) > 0 {
		got[0] = 'X'
	}
	wantValue(t, c, "k", []byte("original"))
}

func testEmptyValue(t *testing.T, c ports.Cache) {
	mustSet(t, c, "empty", []byte{}, ttl)
	got, ok := mustGet(t, c, "empty")
	if !ok || len(got) != 0 {
		t.Fatalf("Get(empty) = %s, %v; want an empty hit", show(got), ok)
	}
	mustSet(t, c, "nil", nil, ttl)
	if got, ok := mustGet(t, c, "nil"); !ok || len(got) != 0 {
		t.Fatalf("Get(nil) = %s, %v; want an empty hit", show(got), ok)
	}
}

func testOverwrite(t *testing.T, c ports.Cache) {
	mustSet(t, c, "k", []byte("first, and longer"), ttl)
	mustSet(t, c, "k", []byte("second"), ttl)
	wantValue(t, c, "k", []byte("second"))

	// The overwrite's TTL replaces the first one's.
	mustSet(t, c, "short", []byte("a"), ttl)
	mustSet(t, c, "short", []byte("b"), 100*time.Millisecond)
	waitMiss(t, c, "short", 3*time.Second)
}

// waitMiss polls key until it misses, failing after within.
func waitMiss(t *testing.T, c ports.Cache, key string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if _, ok := mustGet(t, c, key); !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Get(%q) still hits %v after its TTL", key, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testExpiry(t *testing.T, c ports.Cache) {
	start := time.Now()
	mustSet(t, c, "short", []byte("a"), 150*time.Millisecond)
	mustSet(t, c, "long", []byte("b"), ttl)
	// Read at once (well inside the TTL, unless the machine stalls).
	if got, ok := mustGet(t, c, "short"); !ok && time.Since(start) < 100*time.Millisecond {
		t.Fatalf("Get(short) missed right after Set")
	} else if ok && !bytes.Equal(got, []byte("a")) {
		t.Fatalf("Get(short) = %s", show(got))
	}
	time.Sleep(200 * time.Millisecond)
	waitMiss(t, c, "short", 3*time.Second)
	wantValue(t, c, "long", []byte("b"))

	// An expired key can be set again.
	mustSet(t, c, "short", []byte("again"), ttl)
	wantValue(t, c, "short", []byte("again"))
}

func testNonPositiveTTL(t *testing.T, c ports.Cache) {
	for _, d := range []time.Duration{0, -time.Second} {
		if err := c.Set(t.Context(), "k", []byte("v"), d); err == nil {
			t.Errorf("Set with ttl %v: no error (a non-positive ttl must be refused, not stored forever)", d)
		}
	}
	wantMiss(t, c, "k")
}

func testLargeValue(t *testing.T, c ports.Cache) {
	v := make([]byte, 1<<20)
	for i := range v {
		v[i] = byte(i*7 + i>>8)
	}
	mustSet(t, c, "large", v, ttl)
	wantValue(t, c, "large", v)
}

func testBinaryValue(t *testing.T, c ports.Cache) {
	v := make([]byte, 256)
	for i := range v {
		v[i] = byte(i)
	}
	v = append(v, "\r\n$-1\r\n*0\r\n\x00"...) // protocol look-alikes
	mustSet(t, c, "binary", v, ttl)
	wantValue(t, c, "binary", v)
}

func oddKeys() []string {
	return []string{
		"",
		" ",
		"with space",
		"line\nbreak\r\n",
		"nul\x00inside",
		"glob*?[chars]",
		"{hash}tag",
		"ünïcödé ✓",
		"\xff\xfe not utf-8",
		"colon:separated:key",
		"/path/like?query=1&b=2#frag",
		strings.Repeat("long", 1000),
	}
}

func testOddKeys(t *testing.T, c ports.Cache) {
	keys := oddKeys()
	for i, k := range keys {
		mustSet(t, c, k, []byte(fmt.Sprint("value ", i)), ttl)
	}
	for i, k := range keys {
		wantValue(t, c, k, []byte(fmt.Sprint("value ", i)))
	}
	// Counters take the same keys.
	bump(t, c, keys...)
	g := generations(t, c, keys...)
	bump(t, c, keys...)
	g2 := generations(t, c, keys...)
	for i, k := range keys {
		if g[i] <= 0 || g2[i] != g[i]+1 {
			t.Errorf("counter %q: %d after one Bump, %d after two; want > 0, then +1", k, g[i], g2[i])
		}
	}
}

func testGenerationsNeverBumped(t *testing.T, c ports.Cache) {
	if g := generations(t, c, "never", "bumped"); g[0] != 0 || g[1] != 0 {
		t.Fatalf("Generations of never-bumped counters = %v, want [0 0]", g)
	}
}

func testGenerationsEmpty(t *testing.T, c ports.Cache) {
	g, err := c.Generations(t.Context())
	if err != nil {
		t.Fatalf("Generations(): %v", err)
	}
	if len(g) != 0 {
		t.Fatalf("Generations() = %v, want none", g)
	}
}

func testBumpEmpty(t *testing.T, c ports.Cache) {
	if err := c.Bump(t.Context()); err != nil {
		t.Fatalf("Bump(): %v", err)
	}
}

func testBumpIncrements(t *testing.T, c ports.Cache) {
	prev := generation(t, c, "user:1")
	bump(t, c, "user:1")
	first := generation(t, c, "user:1")
	if first <= prev {
		t.Fatalf("after the first Bump: %d, want above %d", first, prev)
	}
	for i := int64(1); i <= 5; i++ {
		bump(t, c, "user:1")
		if got := generation(t, c, "user:1"); got != first+i {
			t.Fatalf("after %d more Bumps: %d, want %d (a live counter gains exactly one per Bump)", i, got, first+i)
		}
	}
	if got := generation(t, c, "user:2"); got != 0 {
		t.Fatalf("an untouched counter reads %d, want 0", got)
	}
}

func testBumpSeveral(t *testing.T, c ports.Cache) {
	bump(t, c, "a", "b")
	g := generations(t, c, "a", "b", "c")
	if g[0] <= 0 || g[1] <= 0 || g[2] != 0 {
		t.Fatalf("after Bump(a, b): %v, want a, b > 0 and c = 0", g)
	}
	bump(t, c, "a", "b", "c")
	g2 := generations(t, c, "a", "b", "c")
	if g2[0] != g[0]+1 || g2[1] != g[1]+1 || g2[2] <= 0 {
		t.Fatalf("after Bump(a, b, c): %v, was %v; want a and b +1, c > 0", g2, g)
	}
	// A key twice in one Bump gains two.
	bump(t, c, "a", "a")
	if got := generation(t, c, "a"); got != g2[0]+2 {
		t.Fatalf("after Bump(a, a): %d, want %d", got, g2[0]+2)
	}
}

func testBumpConcurrent(t *testing.T, c ports.Cache) {
	const n = 20
	bump(t, c, "hot")
	start := generation(t, c, "hot")
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if err := c.Bump(context.Background(), "hot", "global"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Bump: %v", err)
	}
	if got := generation(t, c, "hot"); got != start+n {
		t.Fatalf("after %d concurrent Bumps: %d, want %d", n, got, start+n)
	}
}

// testBumpWhileReading checks that readers never see a counter go down
// while writers bump it, and that no Bump is lost.
func testBumpWhileReading(t *testing.T, c ports.Cache) {
	const writers, bumps, readers = 4, 25, 4
	keys := []string{"user:7", "global"}
	bump(t, c, keys...)
	start := generations(t, c, keys...)
	var wg sync.WaitGroup
	errs := make(chan error, writers+readers)
	done := make(chan struct{})
	for range writers {
		wg.Go(func() {
			for range bumps {
				if err := c.Bump(context.Background(), keys...); err != nil {
					errs <- fmt.Errorf("Bump: %w", err)
					return
				}
			}
		})
	}
	var rg sync.WaitGroup
	for range readers {
		rg.Go(func() {
			last := slices.Clone(start)
			for {
				g, err := c.Generations(context.Background(), keys...)
				if err != nil {
					errs <- fmt.Errorf("Generations: %w", err)
					return
				}
				for i := range last {
					if g[i] < last[i] {
						errs <- fmt.Errorf("%s went down from %d to %d", keys[i], last[i], g[i])
						return
					}
					last[i] = g[i]
				}
				select {
				case <-done:
					return
				default:
				}
			}
		})
	}
	wg.Wait()
	close(done)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	g := generations(t, c, keys...)
	for i := range keys {
		if g[i] != start[i]+writers*bumps {
			t.Errorf("%s: %d after %d Bumps from %d", keys[i], g[i], writers*bumps, start[i])
		}
	}
}

func testGenerationsMany(t *testing.T, c ports.Cache) {
	const n = 200
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%d", i)
	}
	// Key i is bumped i%4 times, in three calls of decreasing size.
	for round := 1; round < 4; round++ {
		var batch []string
		for i := range keys {
			if i%4 >= round {
				batch = append(batch, keys[i])
			}
		}
		bump(t, c, batch...)
	}
	g := generations(t, c, keys...)
	for i, k := range keys {
		if times := i % 4; times == 0 && g[i] != 0 || times > 0 && g[i] <= 0 {
			t.Fatalf("%s, bumped %d times, reads %d", k, times, g[i])
		}
	}
	reversed := slices.Clone(keys)
	slices.Reverse(reversed)
	gr := generations(t, c, reversed...)
	for i := range keys {
		if gr[n-1-i] != g[i] {
			t.Fatalf("Generations in reverse order: %s reads %d, was %d", keys[i], gr[n-1-i], g[i])
		}
	}
	bump(t, c, keys...)
	g2 := generations(t, c, keys...)
	for i := range keys {
		if g[i] != 0 && g2[i] != g[i]+1 || g[i] == 0 && g2[i] <= 0 {
			t.Fatalf("%s: %d after one more Bump, was %d", keys[i], g2[i], g[i])
		}
	}
}

func testValuesAndCountersApart(t *testing.T, c ports.Cache) {
	mustSet(t, c, "shared", []byte("not a number"), ttl)
	if g := generation(t, c, "shared"); g != 0 {
		t.Fatalf("a counter sharing a value's key reads %d, want 0", g)
	}
	bump(t, c, "shared")
	wantValue(t, c, "shared", []byte("not a number"))
	if g := generation(t, c, "shared"); g <= 0 {
		t.Fatalf("after Bump, counter reads %d", g)
	}
	bump(t, c, "only-counter")
	wantMiss(t, c, "only-counter")
}

func testConcurrentSetGet(t *testing.T, c ports.Cache) {
	const goroutines, ops = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			ctx := context.Background()
			for i := range ops {
				key := fmt.Sprint("k", i%5)
				want := fmt.Appendf(nil, "%s from %d", key, g)
				if err := c.Set(ctx, key, want, ttl); err != nil {
					errs <- err
					return
				}
				v, ok, err := c.Get(ctx, key)
				if err != nil {
					errs <- err
					return
				}
				// Another goroutine may have overwritten it, but never with
				// a value for another key, nor a torn one.
				if ok && !bytes.HasPrefix(v, []byte(key+" from ")) {
					errs <- fmt.Errorf("Get(%s) = %q", key, v)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// ForgottenCounter checks the rule for counters an adapter forgets (when
// one expires or is evicted): it never again takes a value it has had.
// It bumps key many times, quickly, so that the counter runs ahead of any
// clock it may have been created from, records every value it read, calls
// forget (which must make the adapter drop the counter, e.g. wait past a
// short counter TTL), then bumps again: the new value must be above all.
func ForgottenCounter(t *testing.T, c ports.Cache, key string, forget func(t *testing.T)) {
	t.Helper()
	const bumps = 500
	keys := make([]string, bumps)
	for i := range keys {
		keys[i] = key
	}
	bump(t, c, key)
	before := generation(t, c, key)
	bump(t, c, keys...) // one call: as fast as the adapter goes
	high := generation(t, c, key)
	if high != before+bumps {
		t.Fatalf("%d Bumps took the counter from %d to %d", bumps, before, high)
	}
	forget(t)
	if g := generation(t, c, key); g != 0 && g < high {
		t.Fatalf("forgotten counter reads %d: not 0, yet below its last value %d (entries stored under %d may be stale)", g, high, g)
	}
	bump(t, c, key)
	if got := generation(t, c, key); got <= high {
		t.Fatalf("forgotten counter restarted at %d, not above its earlier %d", got, high)
	}
}

// testGetLatest: an adapter that offers ports.LatestGetter reads what
// Generations and Get would have: the counters (0 never bumped) and the
// value stored under ports.KeyAt of them; after a bump, the value stored
// under the old generations is no longer what it reads. An adapter may
// refuse with errors.ErrUnsupported (none of the suite's deployments do).
func testGetLatest(t *testing.T, c ports.Cache) {
	lg, ok := c.(ports.LatestGetter)
	if !ok {
		t.Logf("%T does not offer GetLatest", c)
		return
	}
	ctx := t.Context()
	counters := []string{"gen:epoch", "gen:u:7"}
	gens, v, hit, err := lg.GetLatest(ctx, counters, "list:v1", "abc")
	if err != nil {
		t.Fatalf("GetLatest on an empty cache: %v", err)
	}
	want, err := c.Generations(ctx, counters...)
	if err != nil {
		t.Fatal(err)
	}
	if hit || v != nil || !slices.Equal(gens, want) {
		t.Fatalf("GetLatest on an empty cache = %v, %q, %v; want %v, nil, false", gens, v, hit, want)
	}
	if err := c.Set(ctx, ports.KeyAt("list:v1", gens, "abc"), []byte("page one"), ttl); err != nil {
		t.Fatal(err)
	}
	gens2, v, hit, err := lg.GetLatest(ctx, counters, "list:v1", "abc")
	if err != nil || !hit || string(v) != "page one" || !slices.Equal(gens2, gens) {
		t.Fatalf("GetLatest after Set = %v, %q, %v, %v; want %v, \"page one\", true", gens2, v, hit, err, gens)
	}
	// Another suffix, another prefix: misses.
	if _, _, hit, err := lg.GetLatest(ctx, counters, "list:v1", "abd"); err != nil || hit {
		t.Fatalf("GetLatest of another suffix: hit %v, %v", hit, err)
	}
	if _, _, hit, err := lg.GetLatest(ctx, counters, "counts:v1", "abc"); err != nil || hit {
		t.Fatalf("GetLatest of another prefix: hit %v, %v", hit, err)
	}
	// A bump moves the key on: the old value is not read.
	if err := c.Bump(ctx, "gen:u:7"); err != nil {
		t.Fatal(err)
	}
	gens3, v, hit, err := lg.GetLatest(ctx, counters, "list:v1", "abc")
	if err != nil || hit || v != nil {
		t.Fatalf("GetLatest after a bump = %q, %v, %v; want a miss", v, hit, err)
	}
	if gens3[0] != gens[0] || gens3[1] <= gens[1] {
		t.Fatalf("generations after a bump = %v, before %v", gens3, gens)
	}
	now, err := c.Generations(ctx, counters...)
	if err != nil || !slices.Equal(now, gens3) {
		t.Fatalf("Generations = %v, %v; GetLatest said %v", now, err, gens3)
	}
	// Values are copies, as with Get.
	if err := c.Set(ctx, ports.KeyAt("list:v1", gens3, "abc"), []byte("page two"), ttl); err != nil {
		t.Fatal(err)
	}
	_, v, _, _ = lg.GetLatest(ctx, counters, "list:v1", "abc")
	if string(v) != "page two" {
		t.Fatalf("GetLatest = %q, want page two", v)
	}
	v[0] = 'X'
	if _, v2, _, _ := lg.GetLatest(ctx, counters, "list:v1", "abc"); string(v2) != "page two" {
		t.Fatalf("a returned value aliases the cache: %q", v2)
	}
	// An empty value is a hit, not a miss.
	if err := c.Set(ctx, ports.KeyAt("list:v1", gens3, "empty"), []byte{}, ttl); err != nil {
		t.Fatal(err)
	}
	if _, v, hit, err := lg.GetLatest(ctx, counters, "list:v1", "empty"); err != nil || !hit || len(v) != 0 {
		t.Fatalf("GetLatest of an empty value = %q, %v, %v", v, hit, err)
	}
}
