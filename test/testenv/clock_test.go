package testenv_test

import (
	"sync"
	"testing"
	"time"

	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/testenv"
)

var _ ports.Clock = (*testenv.Clock)(nil)

func TestClock(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		move func(c *testenv.Clock)
		want []time.Time // the readings after move
	}{
		{"frozen", func(*testenv.Clock) {}, []time.Time{t0, t0, t0}},
		{"set", func(c *testenv.Clock) { c.Set(t0.Add(time.Hour)) }, []time.Time{t0.Add(time.Hour), t0.Add(time.Hour)}},
		{"advance", func(c *testenv.Clock) {
			if got := c.Advance(time.Minute); !got.Equal(t0.Add(time.Minute)) {
				t.Errorf("Advance returned %v, want %v", got, t0.Add(time.Minute))
			}
		}, []time.Time{t0.Add(time.Minute), t0.Add(time.Minute)}},
		{"step", func(c *testenv.Clock) { c.SetStep(time.Millisecond) },
			[]time.Time{t0, t0.Add(time.Millisecond), t0.Add(2 * time.Millisecond)}},
		{"step then freeze", func(c *testenv.Clock) {
			c.SetStep(time.Second)
			c.Now()
			c.SetStep(0)
		}, []time.Time{t0.Add(time.Second), t0.Add(time.Second)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testenv.NewClock(t0)
			tc.move(c)
			for i, want := range tc.want {
				if got := c.Now(); !got.Equal(want) {
					t.Errorf("reading %d = %v, want %v", i, got, want)
				}
			}
		})
	}
}

// Concurrent readings with a step are each distinct: no two readers see
// the same time (run with -race).
func TestClockConcurrent(t *testing.T) {
	c := testenv.NewClock(time.Unix(0, 0))
	c.SetStep(time.Nanosecond)
	const n = 8
	got := make([][]time.Time, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			for range 100 {
				got[i] = append(got[i], c.Now())
			}
		})
	}
	wg.Wait()
	seen := map[time.Time]bool{}
	for _, ts := range got {
		for _, ts := range ts {
			if seen[ts] {
				t.Fatalf("reading %v seen twice", ts)
			}
			seen[ts] = true
		}
	}
	if len(seen) != n*100 {
		t.Fatalf("%d distinct readings, want %d", len(seen), n*100)
	}
}
