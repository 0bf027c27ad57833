package rediscache

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/cachetest"
	"github.com/activityd/activityd/test/testenv"
)

var _ ports.Cache = (*Cache)(nil)

// quiet drops go-redis's log lines (one per failed dial in the outage
// tests); the tests assert the errors themselves.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	os.Exit(m.Run())
}

// open returns a cache on TEST_REDIS_URL under a prefix of t's own.
func open(t *testing.T, opts Options) *Cache {
	t.Helper()
	url, prefix := testenv.RedisURL(t)
	opts.KeyPrefix = prefix
	if opts.Timeout == 0 {
		// The contract suite moves 1 MiB values and hundreds of counters;
		// allow a loaded CI machine more than production's 50ms.
		opts.Timeout = 2 * time.Second
	}
	c, err := Open(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestContract(t *testing.T) {
	testenv.NeedRedis(t)
	cachetest.Run(t, func(t *testing.T) ports.Cache { return open(t, Options{}) })
}

func TestCounterExpiry(t *testing.T) {
	const counterTTL = 300 * time.Millisecond
	c := open(t, Options{CounterTTL: counterTTL})
	cachetest.ForgottenCounter(t, c, "user:1", func(t *testing.T) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, err := c.Client().Exists(t.Context(), c.counterKey("user:1")).Result()
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("counter still exists 5s after its %v TTL", counterTTL)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func TestCounterTTLRenewedByBump(t *testing.T) {
	ctx := t.Context()
	c := open(t, Options{CounterTTL: time.Hour})
	if err := c.Bump(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	pttl, err := c.Client().PTTL(ctx, c.counterKey("k")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if pttl <= 59*time.Minute || pttl > time.Hour {
		t.Fatalf("counter PTTL %v, want about an hour", pttl)
	}
	// Lower it by hand: the next Bump renews it.
	if err := c.Client().PExpire(ctx, c.counterKey("k"), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Bump(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if pttl, _ = c.Client().PTTL(ctx, c.counterKey("k")).Result(); pttl <= 59*time.Minute {
		t.Fatalf("Bump did not renew the counter TTL: %v", pttl)
	}
}

func TestCounterCreatedFromServerClock(t *testing.T) {
	ctx := t.Context()
	c := open(t, Options{})
	before := time.Now()
	if err := c.Bump(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	g, err := c.Generations(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// The server is local: its clock is this one, within a few seconds.
	created := time.UnixMicro(g[0] - 1)
	if d := created.Sub(before); d < -5*time.Second || d > 5*time.Second {
		t.Fatalf("new counter %d is %v, not the server's time (now %v)", g[0], created, before)
	}
}

func TestKeysArePrefixed(t *testing.T) {
	ctx := t.Context()
	c := open(t, Options{})
	if err := c.Set(ctx, "v", []byte("x"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.Bump(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	keys, err := c.Client().Keys(ctx, c.prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{c.prefix + "v:v": true, c.prefix + "g:g": true}
	if len(keys) != 2 || !want[keys[0]] || !want[keys[1]] {
		t.Fatalf("keys under the prefix: %q, want %q and %q", keys, c.prefix+"v:v", c.prefix+"g:g")
	}
}

func TestSetTTLs(t *testing.T) {
	ctx := t.Context()
	c := open(t, Options{CounterTTL: time.Hour})
	if err := c.Set(ctx, "k", []byte("v"), 31*time.Minute); err == nil {
		t.Fatal("Set with a ttl above CounterTTL/2: no error")
	}
	if err := c.Set(ctx, "k", []byte("v"), 30*time.Minute); err != nil {
		t.Fatalf("Set with ttl = CounterTTL/2: %v", err)
	}
	// Sub-millisecond TTLs round up rather than to zero.
	if err := c.Set(ctx, "tiny", []byte("v"), time.Microsecond); err != nil {
		t.Fatalf("Set with ttl 1µs: %v", err)
	}
}

func TestCorruptCounter(t *testing.T) {
	ctx := t.Context()
	c := open(t, Options{})
	if err := c.Client().Set(ctx, c.counterKey("bad"), "abc", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Generations(ctx, "ok", "bad"); err == nil || !strings.Contains(err.Error(), "not an integer") {
		t.Fatalf("Generations of a non-integer counter: %v", err)
	}
	if err := c.Bump(ctx, "ok", "bad"); err == nil {
		t.Fatal("Bump of a non-integer counter: no error")
	}
}

func TestPing(t *testing.T) {
	c := open(t, Options{})
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestOpenBadURL(t *testing.T) {
	_, err := Open("http://user:secret@host", Options{})
	if err == nil {
		t.Fatal("no error")
	}
	_, err = Open("redis://user:secret@host/x", Options{})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error %v: want one that does not show the password", err)
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.Timeout != 50*time.Millisecond || o.CounterTTL != 24*time.Hour || o.DialTimeout != 200*time.Millisecond {
		t.Fatalf("defaults: %+v", o)
	}
	if o := (Options{Timeout: time.Second}).withDefaults(); o.DialTimeout != time.Second {
		t.Fatalf("DialTimeout with a 1s Timeout: %v", o.DialTimeout)
	}
	uo := &redis.UniversalOptions{}
	applyTimeouts(uo, Options{}.withDefaults())
	if uo.ReadTimeout != 50*time.Millisecond || uo.WriteTimeout != 50*time.Millisecond ||
		uo.PoolTimeout != 50*time.Millisecond || uo.DialTimeout != 200*time.Millisecond ||
		!uo.ContextTimeoutEnabled || uo.DialerRetries != 1 {
		t.Fatalf("go-redis timeouts: %+v", uo)
	}
}

// calls runs every cache method once and returns their errors, by name.
func calls(c *Cache) map[string]error {
	ctx := context.Background()
	_, _, getErr := c.Get(ctx, "k")
	_, genErr := c.Generations(ctx, "a", "b")
	return map[string]error{
		"Get":         getErr,
		"Set":         c.Set(ctx, "k", []byte("v"), time.Minute),
		"Generations": genErr,
		"Bump":        c.Bump(ctx, "a", "b"),
		"Ping":        c.Ping(ctx),
	}
}

// within runs f and fails t if it does not return within d: a cache call
// must never hang, whatever Redis does.
func within[T any](t *testing.T, d time.Duration, what string, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
		panic("unreachable")
	}
}

// TestOutageAndRecovery kills a private Redis under a live cache: every
// call fails, quickly; when Redis comes back on the same address, the same
// cache works again.
func TestOutageAndRecovery(t *testing.T) {
	addr, stop, restart := testenv.StartRedis(t)
	c, err := Open("redis://"+addr+"/0", Options{KeyPrefix: "t:"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	for name, err := range within(t, 5*time.Second, "calls to a live Redis", func() map[string]error { return calls(c) }) {
		if err != nil {
			t.Fatalf("%s with Redis up: %v", name, err)
		}
	}

	stop()
	// Enough rounds to go through the pooled connections (now closed), then
	// refused dials, until go-redis's dial breaker opens (after PoolSize
	// failed dials), from then on failing calls without dialling.
	start := time.Now()
	for i := range 100 {
		for name, err := range within(t, 2*time.Second, "calls to a dead Redis", func() map[string]error { return calls(c) }) {
			if err == nil {
				t.Fatalf("round %d: %s with Redis down: no error", i, name)
			}
			if i == 0 {
				t.Logf("%s with Redis down: %v", name, err)
			}
		}
	}
	t.Logf("500 calls to a dead Redis took %v", time.Since(start))

	restart()
	// go-redis's dial breaker probes about once a second: poll.
	restarted := time.Now()
	deadline := restarted.Add(10 * time.Second)
	for {
		errs := within(t, 2*time.Second, "calls after the restart", func() map[string]error { return calls(c) })
		var failed []string
		for name, err := range errs {
			if err != nil {
				failed = append(failed, name+": "+err.Error())
			}
		}
		if len(failed) == 0 {
			t.Logf("calls succeed again %v after the restart", time.Since(restarted))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after Redis restarted, calls still fail: %v", failed)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The value calls stored after the restart is there.
	v, ok, err := c.Get(t.Context(), "k")
	if err != nil || !ok || string(v) != "v" {
		t.Fatalf("Get after recovery: %q, %v, %v", v, ok, err)
	}
}

// TestSlowRedis blocks a private Redis with DEBUG SLEEP: calls time out
// with an error instead of waiting for it.
func TestSlowRedis(t *testing.T) {
	addr, _, _ := testenv.StartRedis(t)
	c, err := Open("redis://"+addr+"/0", Options{KeyPrefix: "t:"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for name, err := range calls(c) { // warm the pool
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}

	admin := redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: 5 * time.Second})
	defer admin.Close()
	var wg sync.WaitGroup
	sleeping := make(chan struct{})
	wg.Go(func() {
		close(sleeping)
		if err := admin.Do(context.Background(), "DEBUG", "SLEEP", "1").Err(); err != nil {
			t.Errorf("DEBUG SLEEP: %v", err)
		}
	})
	<-sleeping
	time.Sleep(100 * time.Millisecond) // let the server start sleeping
	start := time.Now()
	errs := within(t, 2*time.Second, "calls to a sleeping Redis", func() map[string]error { return calls(c) })
	t.Logf("five calls to a sleeping Redis took %v", time.Since(start))
	for name, err := range errs {
		if err == nil {
			// Only possible if the machine stalled so long that Redis woke.
			if time.Since(start) < 800*time.Millisecond {
				t.Errorf("%s with Redis asleep: no error", name)
			}
			continue
		}
		if !isTimeout(err) {
			t.Errorf("%s with Redis asleep: %v, want a timeout", name, err)
		}
	}
	wg.Wait()

	// Awake again, the same cache works.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := c.Ping(t.Context())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ping after Redis woke: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

func TestCanceledContext(t *testing.T) {
	c := open(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := c.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a canceled context: %v", err)
	}
	if err := c.Bump(ctx, "k"); err == nil {
		t.Error("Bump with a canceled context: no error")
	}
}

// On a Cluster the value and its counters may live on different nodes, so
// GetLatest refuses, and the app reads them with Generations and Get.
func TestGetLatestRefusedOnCluster(t *testing.T) {
	c := New(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}}, Options{})
	t.Cleanup(func() { c.Close() })
	if _, ok := c.Client().(*redis.ClusterClient); !ok {
		t.Fatalf("two addresses made a %T, want a Cluster client", c.Client())
	}
	if _, _, _, err := c.GetLatest(t.Context(), []string{"g"}, "p", "s"); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("GetLatest on a Cluster: %v, want errors.ErrUnsupported", err)
	}
}
