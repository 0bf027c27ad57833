// Package limittest is the contract suite every ports.Limiter adapter must
// pass: an adapter's test calls Run with a function that opens a fresh
// limiter (no key has spent anything), and the suite checks what
// ports.Limiter promises — a burst then denials with a retry time, keys
// that never share a budget, budgets that come back, exactly the burst
// allowed under concurrency, and invalid limits refused.
package limittest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/activityd/activityd/ports"
)

// Run runs the contract suite. open must return a limiter in which no key
// has spent anything (an adapter sharing a server uses a new key prefix)
// and register its own cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) ports.Limiter) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, l ports.Limiter)
	}{
		{"BurstThenDenied", testBurstThenDenied},
		{"KeysApart", testKeysApart},
		{"OddKeys", testOddKeys},
		{"Refills", testRefills},
		{"ConcurrentExactlyBurst", testConcurrent},
		{"InvalidLimit", testInvalidLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := open(t)
			if l == nil {
				t.Fatal("open returned a nil limiter")
			}
			tc.fn(t, l)
		})
	}
}

// slow refills one request an hour: within a test, only the burst counts.
var slow = ports.Limit{Rate: 1, Period: time.Hour, Burst: 5}

func allow(t *testing.T, l ports.Limiter, key string, lim ports.Limit) ports.Decision {
	t.Helper()
	d, err := l.Allow(t.Context(), key, lim)
	if err != nil {
		t.Fatalf("Allow(%q, %+v): %v", key, lim, err)
	}
	return d
}

func testBurstThenDenied(t *testing.T, l ports.Limiter) {
	for i := range slow.Burst {
		d := allow(t, l, "k", slow)
		if !d.Allowed {
			t.Fatalf("request %d of a burst of %d denied: %+v", i+1, slow.Burst, d)
		}
		if want := slow.Burst - 1 - i; d.Remaining != want {
			t.Errorf("request %d: Remaining = %d, want %d", i+1, d.Remaining, want)
		}
		if d.RetryAfter != 0 {
			t.Errorf("request %d allowed with RetryAfter %v, want 0", i+1, d.RetryAfter)
		}
		if d.ResetAfter <= 0 || d.ResetAfter > time.Duration(i+1)*slow.Period {
			t.Errorf("request %d: ResetAfter = %v, want in (0, %v]", i+1, d.ResetAfter, time.Duration(i+1)*slow.Period)
		}
	}
	for range 3 {
		d := allow(t, l, "k", slow)
		if d.Allowed {
			t.Fatalf("a request past the burst of %d allowed: %+v", slow.Burst, d)
		}
		if d.Remaining != 0 {
			t.Errorf("denied with Remaining %d, want 0", d.Remaining)
		}
		// One request's worth comes back every Period/Rate (an hour).
		if d.RetryAfter <= 0 || d.RetryAfter > slow.Period {
			t.Errorf("denied with RetryAfter %v, want in (0, %v]", d.RetryAfter, slow.Period)
		}
		if d.ResetAfter < d.RetryAfter {
			t.Errorf("denied with ResetAfter %v before RetryAfter %v", d.ResetAfter, d.RetryAfter)
		}
	}
}

func testKeysApart(t *testing.T, l ports.Limiter) {
	for range slow.Burst + 1 {
		allow(t, l, "a", slow)
	}
	if d := allow(t, l, "a", slow); d.Allowed {
		t.Fatal("key a allowed past its burst")
	}
	for i := range slow.Burst {
		if d := allow(t, l, "b", slow); !d.Allowed {
			t.Fatalf("key b's request %d denied after key a spent its budget: %+v", i+1, d)
		}
	}
}

func testOddKeys(t *testing.T, l ports.Limiter) {
	one := ports.Limit{Rate: 1, Period: time.Hour, Burst: 1}
	keys := []string{"", " ", "token:abc", "token:abc ", "jwt:{42}", "jwt:ü", "a*", "a?", "a\x00b", "rate:x"}
	for _, k := range keys {
		if d := allow(t, l, k, one); !d.Allowed {
			t.Errorf("first request of key %q denied: another key spent its budget", k)
		}
	}
	for _, k := range keys {
		if d := allow(t, l, k, one); d.Allowed {
			t.Errorf("second request of key %q allowed past a burst of 1", k)
		}
	}
}

func testRefills(t *testing.T, l ports.Limiter) {
	fast := ports.Limit{Rate: 20, Period: time.Second, Burst: 2}
	for range fast.Burst {
		allow(t, l, "k", fast)
	}
	d := allow(t, l, "k", fast)
	if d.Allowed {
		t.Fatal("allowed past the burst")
	}
	if d.RetryAfter <= 0 || d.RetryAfter > fast.Period/time.Duration(fast.Rate) {
		t.Errorf("RetryAfter = %v, want in (0, %v]", d.RetryAfter, fast.Period/time.Duration(fast.Rate))
	}
	// The budget comes back: poll (a deadline, not a timing assertion).
	deadline := time.Now().Add(10 * time.Second)
	for !allow(t, l, "k", fast).Allowed {
		if time.Now().After(deadline) {
			t.Fatal("no request allowed again within 10s at 20 per second")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testConcurrent(t *testing.T, l ports.Limiter) {
	lim := ports.Limit{Rate: 1, Period: time.Hour, Burst: 20}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			for range 4 {
				d, err := l.Allow(t.Context(), "shared", lim)
				if err != nil {
					errs <- err
					return
				}
				if d.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := allowed.Load(); got != int64(lim.Burst) {
		t.Fatalf("200 concurrent requests under a burst of %d: %d allowed", lim.Burst, got)
	}
}

func testInvalidLimit(t *testing.T, l ports.Limiter) {
	for _, lim := range []ports.Limit{
		{},
		{Rate: 0, Period: time.Second, Burst: 1},
		{Rate: 1, Period: 0, Burst: 1},
		{Rate: 1, Period: time.Second, Burst: 0},
		{Rate: -1, Period: time.Second, Burst: 1},
	} {
		if d, err := l.Allow(t.Context(), fmt.Sprintf("invalid-%+v", lim), lim); err == nil {
			t.Errorf("Allow with limit %+v: %+v and no error, want an error", lim, d)
		}
	}
}
