package storagetest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/activityd/activityd/ports"
)

// testCacheLedger checks ports.CacheLedger, which every store implements:
// records read back after the seq asked for, in order of commit; the
// epoch moves on exactly when the instance changes, and concurrent
// rebases to one new instance agree on its epoch; pruning.
func testCacheLedger(t *testing.T, s ports.Store) {
	l, ok := s.(ports.CacheLedger)
	if !ok {
		t.Fatalf("%T does not implement ports.CacheLedger", s)
	}
	ctx := context.Background()
	missed := func(seq int64) ports.LedgerState {
		t.Helper()
		st, err := l.Missed(ctx, seq)
		if err != nil {
			t.Fatalf("Missed(%d): %v", seq, err)
		}
		return st
	}

	empty := missed(0)
	if empty.Epoch != 0 || len(empty.Counters) != 0 {
		t.Fatalf("a new ledger: %+v, want epoch 0 and no counters", empty)
	}
	if err := l.RecordMissed(ctx, nil); err != nil {
		t.Fatalf("RecordMissed(nil): %v", err)
	}
	if err := l.RecordMissed(ctx, []string{"gen:all", "gen:u:1"}); err != nil {
		t.Fatal(err)
	}
	first := missed(empty.Seq)
	if first.Seq <= empty.Seq || !slices.Equal(sorted(first.Counters), []string{"gen:all", "gen:u:1"}) {
		t.Fatalf("after one record: %+v (from seq %d)", first, empty.Seq)
	}
	if err := l.RecordMissed(ctx, []string{"gen:u:2"}); err != nil {
		t.Fatal(err)
	}
	second := missed(first.Seq)
	if second.Seq <= first.Seq || !slices.Equal(second.Counters, []string{"gen:u:2"}) {
		t.Fatalf("after a second record, from seq %d: %+v", first.Seq, second)
	}
	if again := missed(second.Seq); len(again.Counters) != 0 || again.Seq != second.Seq {
		t.Fatalf("nothing new since seq %d: %+v", second.Seq, again)
	}
	if all := missed(0); !slices.Equal(sorted(all.Counters), []string{"gen:all", "gen:u:1", "gen:u:2"}) {
		t.Fatalf("every retained record from seq 0: %+v", all)
	}

	// Concurrent records: each is seen exactly once by a reader that
	// follows Seq, whatever the interleaving.
	const writers = 8
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			if err := l.RecordMissed(ctx, []string{"gen:w:" + string(rune('a'+i))}); err != nil {
				t.Error(err)
			}
		})
	}
	seen := map[string]int{}
	seq := second.Seq
	wgDone := make(chan struct{})
	go func() { wg.Wait(); close(wgDone) }()
	for done := false; !done; {
		select {
		case <-wgDone:
			done = true
		case <-time.After(time.Millisecond):
		}
		st := missed(seq)
		for _, c := range st.Counters {
			seen[c]++
		}
		seq = st.Seq
	}
	st := missed(seq)
	for _, c := range st.Counters {
		seen[c]++
	}
	if len(seen) != writers {
		t.Fatalf("a reader following Seq saw %d of %d concurrent records: %v", len(seen), writers, seen)
	}
	for c, n := range seen {
		if n != 1 {
			t.Fatalf("record %s seen %d times", c, n)
		}
	}

	// Epochs.
	e1, err := l.Rebase(ctx, "run-a")
	if err != nil || e1 != 1 {
		t.Fatalf("first Rebase = %d, %v; want 1", e1, err)
	}
	if e, err := l.Rebase(ctx, "run-a"); err != nil || e != e1 {
		t.Fatalf("Rebase to the same instance = %d, %v; want %d", e, err, e1)
	}
	if got := missed(seq).Epoch; got != e1 {
		t.Fatalf("Missed's epoch = %d, want %d", got, e1)
	}
	var (
		mu     sync.Mutex
		epochs []int64
	)
	for range 8 {
		wg.Go(func() {
			e, err := l.Rebase(ctx, "run-b")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			epochs = append(epochs, e)
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, e := range epochs {
		if e != e1+1 {
			t.Fatalf("concurrent rebases to a new instance returned %v; want all %d", epochs, e1+1)
		}
	}
	if e, err := l.Rebase(ctx, "run-a"); err != nil || e != e1+2 {
		t.Fatalf("Rebase back to the first instance = %d, %v; want %d (a return is a change too)", e, err, e1+2)
	}

	// Pruning drops records made before the time given, and only those.
	if err := l.PruneMissed(ctx, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := len(missed(0).Counters); n != 3+writers {
		t.Fatalf("pruning records older than an hour left %d counters, want %d", n, 3+writers)
	}
	if err := l.PruneMissed(ctx, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if st := missed(0); len(st.Counters) != 0 {
		t.Fatalf("after pruning everything: %+v; want no counters", st)
	}
	if st := missed(seq); len(st.Counters) != 0 || st.Seq != seq {
		t.Fatalf("after pruning everything, from seq %d: %+v", seq, st)
	}
	if err := l.RecordMissed(ctx, []string{"gen:u:3"}); err != nil {
		t.Fatal(err)
	}
	if st := missed(seq); !slices.Equal(st.Counters, []string{"gen:u:3"}) || st.Seq <= seq {
		t.Fatalf("a record after pruning, from seq %d: %+v", seq, st)
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }
