package storage_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/activityd/activityd/adapters/storage"
)

// recorder is a flush that records its groups, answers each call with its
// request times ten, and holds every group until the test lets it go.
type recorder struct {
	mu     sync.Mutex
	groups [][]int
	gate   chan struct{} // a receive per group, or closed: flush returns
}

func newRecorder() *recorder { return &recorder{gate: make(chan struct{})} }

func (r *recorder) flush(calls []storage.Call[int]) []int {
	reqs := make([]int, len(calls))
	for i, c := range calls {
		reqs[i] = c.Req
	}
	r.mu.Lock()
	r.groups = append(r.groups, reqs)
	r.mu.Unlock()
	<-r.gate
	out := make([]int, len(reqs))
	for i, v := range reqs {
		out[i] = v * 10
	}
	return out
}

func (r *recorder) seen() [][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.groups)
}

// result is one Do's outcome.
type result struct {
	res int
	err error
}

// queue calls Do(ctx, v) for each v in order, each from its own goroutine,
// letting each one block (queued, or flushing) before sending the next,
// so they arrive in that order.
func queue(g *storage.Group[int, int], ctx context.Context, vs ...int) []chan result {
	out := make([]chan result, len(vs))
	for i, v := range vs {
		out[i] = make(chan result, 1)
		go func() {
			res, err := g.Do(ctx, v)
			out[i] <- result{res, err}
		}()
		synctest.Wait()
	}
	return out
}

// TestGroupOrderAndAnswers: a group holds the calls queued while the
// flusher was busy, in the order they came, and each caller gets its own
// answer.
func TestGroupOrderAndAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder()
		g := storage.NewGroup(1, 10, r.flush)
		defer g.Close()
		results := queue(g, t.Context(), 0, 1, 2, 3, 4, 5)
		close(r.gate)
		for i, ch := range results {
			if got := <-ch; got.err != nil || got.res != i*10 {
				t.Errorf("call %d: %d, %v; want %d", i, got.res, got.err, i*10)
			}
		}
		if got, want := r.seen(), [][]int{{0}, {1, 2, 3, 4, 5}}; !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("groups %v, want %v: the first alone at once, then the queued ones together in order", got, want)
		}
	})
}

// TestGroupMaxSize: no group holds more than maxSize calls.
func TestGroupMaxSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder()
		g := storage.NewGroup(1, 3, r.flush)
		defer g.Close()
		results := queue(g, t.Context(), 0, 1, 2, 3, 4, 5, 6, 7)
		close(r.gate)
		for _, ch := range results {
			if got := <-ch; got.err != nil {
				t.Fatal(got.err)
			}
		}
		if got, want := r.seen(), [][]int{{0}, {1, 2, 3}, {4, 5, 6}, {7}}; !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("groups %v, want %v", got, want)
		}
	})
}

// TestGroupFlushers: up to flushers groups are flushed at once; the next
// call waits for one of them.
func TestGroupFlushers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder()
		g := storage.NewGroup(2, 10, r.flush)
		defer g.Close()
		results := queue(g, t.Context(), 0, 1, 2, 3)
		if got, want := r.seen(), [][]int{{0}, {1}}; !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("groups in flight %v, want %v: two flushers, each at once", got, want)
		}
		close(r.gate)
		for _, ch := range results {
			if got := <-ch; got.err != nil {
				t.Fatal(got.err)
			}
		}
		if got := r.seen(); len(got) != 3 || !slices.Equal(got[2], []int{2, 3}) {
			t.Errorf("groups %v, want the last two queued together", got)
		}
	})
}

// TestGroupCloseDrains: Close answers every call already queued before it
// returns, and a call after Close gets ErrClosed without being flushed.
func TestGroupCloseDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder()
		g := storage.NewGroup(1, 2, r.flush)
		results := queue(g, t.Context(), 0, 1, 2, 3, 4)
		answered := make(chan int)
		go func() {
			g.Close()
			// The group's goroutines are gone: let the callers' pass on
			// whatever answers they got, and count them.
			synctest.Wait()
			n := 0
			for _, ch := range results {
				n += len(ch)
			}
			answered <- n
		}()
		close(r.gate)
		if n := <-answered; n != len(results) {
			t.Errorf("Close returned with %d of %d queued calls answered", n, len(results))
		}
		for i, ch := range results {
			if got := <-ch; got.err != nil || got.res != i*10 {
				t.Errorf("call %d: %d, %v; want %d", i, got.res, got.err, i*10)
			}
		}
		if _, err := g.Do(t.Context(), 9); !errors.Is(err, storage.ErrClosed) {
			t.Errorf("Do after Close: %v, want ErrClosed", err)
		}
		g.Close() // again: returns at once
		if n := len(r.seen()); n != 3 {
			t.Errorf("%d groups flushed, want 3 (none for the call after Close)", n)
		}
	})
}

// TestGroupCloseWaits: Close returns only once every flush under way has
// answered its calls.
func TestGroupCloseWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder()
		g := storage.NewGroup(2, 10, r.flush)
		results := queue(g, t.Context(), 0, 1) // each flushing, alone
		closed := make(chan struct{})
		go func() {
			g.Close()
			close(closed)
		}()
		returned := func() bool {
			synctest.Wait()
			select {
			case <-closed:
				return true
			default:
				return false
			}
		}
		if returned() {
			t.Fatal("Close returned while two groups were being flushed")
		}
		r.gate <- struct{}{} // one group is stored; the other is flushing
		if returned() {
			t.Fatal("Close returned while a group was being flushed")
		}
		r.gate <- struct{}{}
		if !returned() {
			t.Fatal("Close did not return once every group was stored")
		}
		for i, ch := range results {
			if got := <-ch; got.err != nil || got.res != i*10 {
				t.Errorf("call %d: %d, %v; want %d", i, got.res, got.err, i*10)
			}
		}
	})
}

// TestGroupContextCancel: a call whose context ends before its group is
// flushed gets its context's error and is never flushed, whether it
// ended before Do, while the call waited to be queued, or once queued,
// while its group waited for its turn.
func TestGroupContextCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder()
		turn := make(chan struct{}, 1) // one turn, passed from group to group
		turn <- struct{}{}
		g := storage.NewGroup(2, 10, r.flush, storage.WithTurn(
			func() error { <-turn; return nil },
			func() { turn <- struct{}{} }))
		defer g.Close()

		done, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := g.Do(done, 1); !errors.Is(err, context.Canceled) {
			t.Errorf("Do with a cancelled context: %v", err)
		}

		first := queue(g, t.Context(), 2)[0] // flushing, holding the turn
		waitingCtx, cancelWaiting := context.WithCancel(t.Context())
		waiting := queue(g, waitingCtx, 3)[0] // queued: its group waits for the turn
		sendingCtx, cancelSending := context.WithCancel(t.Context())
		sending := queue(g, sendingCtx, 4)[0] // not queued: the dispatcher is busy
		later := queue(g, t.Context(), 5)[0]
		cancelSending()
		if got := <-sending; !errors.Is(got.err, context.Canceled) {
			t.Errorf("call cancelled before it was queued: %d, %v; want Canceled", got.res, got.err)
		}
		cancelWaiting()
		if got := <-waiting; !errors.Is(got.err, context.Canceled) {
			t.Errorf("call cancelled while its group waited: %d, %v; want Canceled", got.res, got.err)
		}
		close(r.gate)
		if got := <-first; got.err != nil || got.res != 20 {
			t.Errorf("first call: %d, %v", got.res, got.err)
		}
		if got := <-later; got.err != nil || got.res != 50 {
			t.Errorf("later call: %d, %v", got.res, got.err)
		}
		g.Close()
		if got, want := r.seen(), [][]int{{2}, {5}}; !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("groups %v, want %v: no cancelled call flushed", got, want)
		}
	})
}

// TestGroupTurn: a group gathers the calls that came while it waited for
// its turn (no other flusher takes them meanwhile), holds the turn while
// it is flushed, and a turn that cannot be had fails the group's first
// call alone.
func TestGroupTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder()
		close(r.gate)
		errTurn := errors.New("no turn")
		turns := make(chan error)
		var held atomic.Int32
		g := storage.NewGroup(2, 10, r.flush, storage.WithTurn(func() error {
			if err := <-turns; err != nil {
				return err
			}
			held.Add(1)
			return nil
		}, func() { held.Add(-1) }))
		defer g.Close()
		results := queue(g, t.Context(), 0, 1, 2)
		turns <- errTurn
		if got := <-results[0]; !errors.Is(got.err, errTurn) {
			t.Errorf("first call without a turn: %d, %v; want the turn's error", got.res, got.err)
		}
		synctest.Wait() // the next group waits for its turn, with call 1
		more := queue(g, t.Context(), 3)
		turns <- nil
		for i, ch := range append(results[1:], more...) {
			if got := <-ch; got.err != nil || got.res != (i+1)*10 {
				t.Errorf("call %d: %d, %v", i+1, got.res, got.err)
			}
		}
		synctest.Wait()
		if n := held.Load(); n != 0 {
			t.Errorf("%d turns held after the flush", n)
		}
		if got, want := r.seen(), [][]int{{1, 2, 3}}; !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("groups %v, want %v: the calls that came during the wait joined the group", got, want)
		}
	})
}

// TestGroupShortAnswer: a flush that answers fewer calls than it was
// given fails the others instead of leaving them waiting.
func TestGroupShortAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		g := storage.NewGroup(1, 10, func(calls []storage.Call[int]) []int {
			<-gate
			return make([]int, len(calls)-1)
		})
		defer g.Close()
		results := queue(g, t.Context(), 0, 1, 2)
		close(gate)
		if got := <-results[0]; got.err == nil {
			t.Errorf("alone, unanswered: %v", got)
		}
		if got := <-results[1]; got.err != nil {
			t.Errorf("answered: %v", got.err)
		}
		if got := <-results[2]; got.err == nil {
			t.Errorf("second of two, unanswered: %v", got)
		}
	})
}

// TestContexts: the calls' contexts, in order.
func TestContexts(t *testing.T) {
	type key struct{}
	calls := make([]storage.Call[int], 3)
	for i := range calls {
		calls[i].Ctx = context.WithValue(context.Background(), key{}, i)
	}
	for i, ctx := range storage.Contexts(calls) {
		if ctx.Value(key{}) != i {
			t.Errorf("context %d is call %v's", i, ctx.Value(key{}))
		}
	}
}

// BenchmarkGroup is the group commit's own cost: calls to a flush that
// stores nothing, one at a time and from many goroutines.
func BenchmarkGroup(b *testing.B) {
	flush := func(calls []storage.Call[int]) []int { return make([]int, len(calls)) }
	b.Run("serial", func(b *testing.B) {
		g := storage.NewGroup(1, 256, flush)
		b.Cleanup(g.Close)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := g.Do(context.Background(), 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		g := storage.NewGroup(2, 256, flush)
		b.Cleanup(g.Close)
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := g.Do(context.Background(), 1); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func TestReady(t *testing.T) {
	ch := make(chan int, 10)
	for i := range 5 {
		ch <- i
	}
	if got := storage.Ready(ch, []int{-1}, 3); !slices.Equal(got, []int{-1, 0, 1}) {
		t.Errorf("up to the limit: %v", got)
	}
	if got := storage.Ready(ch, nil, 10); !slices.Equal(got, []int{2, 3, 4}) {
		t.Errorf("what is ready, without waiting: %v", got)
	}
	ch <- 9
	close(ch)
	if got := storage.Ready(ch, nil, 10); !slices.Equal(got, []int{9}) {
		t.Errorf("closed channel: %v", got)
	}
}
