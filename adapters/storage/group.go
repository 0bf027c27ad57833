package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrClosed is what a request gets from a store that is closing or closed.
// Its text is database/sql's for a closed pool, so it reads the same
// whichever layer refused the request.
var ErrClosed = errors.New("sql: database is closed")

// Group is a group commit (docs/performance.md): one statement and commit
// per request tops out at the database's commit rate, so concurrent
// requests queue instead, and a flusher stores whatever is queued in one
// go, answering each request after that. A request that finds a flusher
// free is flushed at once, alone, with no added wait; requests only wait
// for each other while every flusher is busy, which is exactly when
// sharing a commit pays.
//
// Req is what a caller asks (an event to create), Res what it is answered
// (the stored event, or the error that one request got).
type Group[Req, Res any] struct {
	flush   func(calls []Call[Req]) []Res
	maxSize int
	take    func() error // WithTurn's; nil: no turns
	release func()

	calls    chan *pending[Req, Res]
	gather   chan struct{}  // a token: the one flusher that takes calls
	mu       sync.RWMutex   // held to send on calls; Lock to close it
	closed   bool           // under mu
	flushers sync.WaitGroup // the flusher goroutines
}

// Call is one request of a group: its caller's context (its deadline, its
// trace) and what it asks.
type Call[Req any] struct {
	Ctx context.Context
	Req Req
}

// pending is a call waiting for its answer.
type pending[Req, Res any] struct {
	Call[Req]
	done chan answer[Res] // buffered: a flusher never blocks on it
}

type answer[Res any] struct {
	res Res
	err error
}

// GroupOption tunes a Group.
type GroupOption func(*groupOptions)

type groupOptions struct {
	take    func() error
	release func()
}

// WithTurn makes each group wait for a turn (a shared connection, say):
// take waits for one once the group has a flusher and before it takes the
// queued calls, so the calls that arrive while it waits join it rather
// than the next group; release ends it once the group is flushed. A turn
// that cannot be had fails the group's first call alone, with take's
// error.
func WithTurn(take func() error, release func()) GroupOption {
	return func(o *groupOptions) { o.take, o.release = take, release }
}

// NewGroup starts a group commit in which up to flushers groups of up to
// maxSize calls are flushed at once. flush stores one group: its calls in
// the order they came, none already cancelled; it returns their answers
// in the same order, and keeps nothing of calls (the slice is reused).
// Close the group to stop it.
func NewGroup[Req, Res any](flushers, maxSize int, flush func(calls []Call[Req]) []Res, opts ...GroupOption) *Group[Req, Res] {
	var o groupOptions
	for _, opt := range opts {
		opt(&o)
	}
	g := &Group[Req, Res]{
		flush:   flush,
		maxSize: max(maxSize, 1),
		take:    o.take,
		release: o.release,
		calls:   make(chan *pending[Req, Res]),
		gather:  make(chan struct{}, 1),
	}
	g.gather <- struct{}{}
	for range max(flushers, 1) {
		g.flushers.Go(g.flusher)
	}
	return g
}

// Do queues req and returns its answer once its group is flushed. The
// error is the group's own, when req got no answer: ErrClosed, ctx's
// error, or take's (see WithTurn); an answer carries its own. A
// request abandoned by its context may still be flushed.
func (g *Group[Req, Res]) Do(ctx context.Context, req Req) (Res, error) {
	var zero Res
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	p := &pending[Req, Res]{Call: Call[Req]{Ctx: ctx, Req: req}, done: make(chan answer[Res], 1)}
	if err := g.enqueue(p); err != nil {
		return zero, err
	}
	select {
	case a := <-p.done:
		return a.res, a.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// enqueue hands p to the dispatcher.
func (g *Group[Req, Res]) enqueue(p *pending[Req, Res]) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return ErrClosed
	}
	select {
	case g.calls <- p:
		return nil
	case <-p.Ctx.Done():
		return p.Ctx.Err()
	}
}

// Close refuses new calls and waits until every queued one is answered.
// It may be called more than once.
func (g *Group[Req, Res]) Close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.calls)
	}
	g.mu.Unlock()
	g.flushers.Wait()
}

// flusher flushes one group after another until the group commit is
// closed and drained. The flushers take turns at gathering: a free one
// takes the first call queued, then (WithTurn) waits for its turn, and
// takes whatever else is queued behind it, up to maxSize; then the next
// free flusher gathers while this one flushes. Flushers live as long as
// the group commit, not one goroutine per group: a flush may run deep
// (SQLite's pure-Go engine), and a fresh goroutine would grow its stack
// again each time.
func (g *Group[Req, Res]) flusher() {
	// Reused from group to group, and emptied after each so as to keep no
	// request alive.
	var batch []*pending[Req, Res]
	var calls []Call[Req]
	for {
		var ok bool
		if batch, ok = g.next(batch[:0]); !ok {
			return
		}
		calls = g.run(batch, calls[:0])
		if g.release != nil {
			g.release()
		}
		clear(batch)
		clear(calls)
	}
}

// next gathers the next group into batch, once it is this flusher's turn
// to; ok is false when the group commit is closed and nothing is queued.
func (g *Group[Req, Res]) next(batch []*pending[Req, Res]) (_ []*pending[Req, Res], ok bool) {
	<-g.gather
	defer func() { g.gather <- struct{}{} }()
	for first := range g.calls {
		if g.take != nil {
			if err := g.take(); err != nil {
				first.done <- answer[Res]{err: err}
				continue
			}
		}
		return Ready(g.calls, append(batch, first), g.maxSize), true
	}
	return batch, false
}

// run flushes the calls of batch still wanted, collected in calls, and
// answers every one.
func (g *Group[Req, Res]) run(batch []*pending[Req, Res], calls []Call[Req]) []Call[Req] {
	live := batch[:0]
	for _, p := range batch {
		if err := p.Ctx.Err(); err != nil {
			p.done <- answer[Res]{err: err} // gave up before it was stored
			continue
		}
		live = append(live, p)
		calls = append(calls, p.Call)
	}
	if len(live) == 0 {
		return calls
	}
	res := g.flush(calls)
	for i, p := range live {
		if i < len(res) {
			p.done <- answer[Res]{res: res[i]}
		} else {
			p.done <- answer[Res]{err: fmt.Errorf("storage: group commit: %d answers for %d calls", len(res), len(live))}
		}
	}
	return calls
}

// Contexts returns the contexts of calls, in order: the requests of a
// BatchSpan.
func Contexts[Req any](calls []Call[Req]) []context.Context {
	out := make([]context.Context, len(calls))
	for i, c := range calls {
		out[i] = c.Ctx
	}
	return out
}

// Ready appends to batch whatever ch holds ready, without waiting, until
// batch holds limit items or ch is empty or closed: how a group commit
// takes the requests queued behind the first.
func Ready[T any](ch <-chan T, batch []T, limit int) []T {
	for len(batch) < limit {
		select {
		case v, ok := <-ch:
			if !ok {
				return batch
			}
			batch = append(batch, v)
		default:
			return batch
		}
	}
	return batch
}
