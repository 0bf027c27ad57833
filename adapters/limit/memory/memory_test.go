package memlimit

import (
	"strconv"
	"testing"
	"time"

	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/limittest"
	"github.com/activityd/activityd/test/testenv"
)

func TestContract(t *testing.T) {
	limittest.Run(t, func(*testing.T) ports.Limiter { return New(Options{}) })
}

// TestRetryAfterIsExact: with a clock of its own, a denied request says
// exactly when the next one fits, and it does fit then and not before.
func TestRetryAfterIsExact(t *testing.T) {
	c := testenv.NewClock(time.Unix(1_700_000_000, 0))
	l := New(Options{Now: c.Now})
	lim := ports.Limit{Rate: 2, Period: time.Second, Burst: 3}
	for range 3 {
		if d, _ := l.Allow(t.Context(), "k", lim); !d.Allowed {
			t.Fatal("burst denied")
		}
	}
	d, _ := l.Allow(t.Context(), "k", lim)
	if d.Allowed || d.RetryAfter != 500*time.Millisecond || d.ResetAfter != 1500*time.Millisecond {
		t.Fatalf("past the burst: %+v, want denied, RetryAfter 500ms, ResetAfter 1.5s", d)
	}
	c.Advance(499 * time.Millisecond)
	if d, _ := l.Allow(t.Context(), "k", lim); d.Allowed {
		t.Fatalf("allowed 1ms before RetryAfter: %+v", d)
	}
	c.Advance(time.Millisecond)
	if d, _ := l.Allow(t.Context(), "k", lim); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("at RetryAfter: %+v, want allowed with nothing remaining", d)
	}
}

// TestBounded: however many keys are seen, at most MaxKeys budgets are
// kept.
func TestBounded(t *testing.T) {
	l := New(Options{MaxKeys: 100})
	lim := ports.Limit{Rate: 1, Period: time.Minute, Burst: 1}
	for i := range 10_000 {
		if _, err := l.Allow(t.Context(), strconv.Itoa(i), lim); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.Len(); n != 100 {
		t.Fatalf("%d budgets kept after 10000 keys, want the bound 100", n)
	}
}

// TestLimitChange: a key asked under another limit is held to the new one.
func TestLimitChange(t *testing.T) {
	l := New(Options{})
	one := ports.Limit{Rate: 1, Period: time.Hour, Burst: 1}
	three := ports.Limit{Rate: 1, Period: time.Hour, Burst: 3}
	l.Allow(t.Context(), "k", one)
	if d, _ := l.Allow(t.Context(), "k", one); d.Allowed {
		t.Fatal("allowed past a burst of 1")
	}
	if d, _ := l.Allow(t.Context(), "k", three); !d.Allowed || d.Remaining != 2 {
		t.Fatalf("under a new burst of 3: %+v, want allowed with 2 remaining", d)
	}
}
