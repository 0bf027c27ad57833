package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// Group commit (docs/performance.md): one INSERT per request tops out at the
// server's commit rate, so concurrent Creates queue instead, and a flusher
// stores whatever is queued as one createMany statement, answering each
// request after that commit. A request that finds a flusher free is
// stored at once, alone, with no added wait; requests only wait for each
// other while every flusher is busy, which is exactly when sharing a
// commit pays.

// maxGroup bounds how many Creates share one statement.
const maxGroup = 256

// flushersFor is how many groups may be in flight at once for a pool of
// maxOpen connections on procs processors: two at least, so that one
// group gathers while another waits for its commit, one per processor
// beyond that (more flushers make smaller groups, and PostgreSQL's work
// per event grows as groups shrink), never more than a quarter of the
// pool, which leaves connections to the readers. On 2 cores, 64 clients
// of single creates (A/B/A/B, events/s): 1 flusher 6.7k/6.9k, 2 7.6k/7.7k,
// 3 7.0k/7.4k, 5 (a pool of 20's quarter, before) 6.2k/6.4k.
func flushersFor(maxOpen, procs int) int {
	return min(max(procs, 2), max(maxOpen/4, 1), 8)
}

type createReq struct {
	ctx  context.Context
	e    domain.Event
	by   string
	done chan createRes // buffered: a flusher never blocks on it
}

type createRes struct {
	c   ports.Created
	err error
}

// groupCommit is the queue and the flushers behind Create.
type groupCommit struct {
	creates chan *createReq
	slots   chan struct{} // one per flusher at work
	mu      sync.RWMutex  // held to send on creates; Lock to close it
	closed  bool
	done    chan struct{} // closed when dispatch has returned
	busy    sync.WaitGroup
}

// startGroupCommit starts the dispatcher; stopGroupCommit ends it.
func (s *Store) startGroupCommit(flushers int) {
	s.group = groupCommit{
		creates: make(chan *createReq),
		slots:   make(chan struct{}, flushers),
		done:    make(chan struct{}),
	}
	go s.dispatch()
}

// stopGroupCommit refuses new Creates and waits for the queued ones to be
// stored.
func (s *Store) stopGroupCommit() {
	g := &s.group
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.creates)
	}
	g.mu.Unlock()
	<-g.done
	g.busy.Wait()
}

var errClosed = errors.New("sql: database is closed")

// Create implements ports.Events: the event and its first history entry,
// or, for an id already stored, the stored event. Concurrent calls share
// statements and commits (group commit).
func (s *Store) Create(ctx context.Context, e domain.Event, by string) (domain.Event, bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	req := &createReq{ctx: ctx, e: e, by: by, done: make(chan createRes, 1)}
	if err := s.enqueue(req); err != nil {
		return domain.Event{}, false, fmt.Errorf("postgres: create event: %w", wrap(err))
	}
	select {
	case r := <-req.done:
		return r.c.Event, r.c.Created, r.err
	case <-ctx.Done():
		// The event may still be stored: a retry with the same id finds it.
		return domain.Event{}, false, fmt.Errorf("postgres: create event: %w", wrap(ctx.Err()))
	}
}

// enqueue hands req to the dispatcher.
func (s *Store) enqueue(req *createReq) error {
	g := &s.group
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return errClosed
	}
	select {
	case g.creates <- req:
		return nil
	case <-req.ctx.Done():
		return req.ctx.Err()
	}
}

// dispatch waits for a free flusher, then hands it the first request
// waiting and whatever else is queued behind it, up to maxGroup.
func (s *Store) dispatch() {
	g := &s.group
	defer close(g.done)
	for req := range g.creates {
		g.slots <- struct{}{}
		batch := storage.Ready(g.creates, []*createReq{req}, maxGroup)
		g.busy.Add(1)
		go func() {
			defer g.busy.Done()
			defer func() { <-g.slots }()
			s.flush(batch)
		}()
	}
}

// flush stores a group and answers each of its requests.
func (s *Store) flush(batch []*createReq) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- createRes{err: fmt.Errorf("postgres: create event: %w", wrap(err))} // gave up before it was stored
			continue
		}
		live = append(live, r)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		s.flushOne(live[0])
		return
	}
	// Shared by requests with deadlines of their own: bounded by the
	// store's operation timeout, not by any one of them.
	ctx, cancel := s.op(context.Background())
	defer cancel()
	reqs := make([]context.Context, len(live))
	es := make([]domain.Event, len(live))
	for i, r := range live {
		reqs[i], es[i] = r.ctx, r.e
	}
	ctx, span := storage.BatchSpan(ctx, s.tracer, "postgres.group_commit", reqs,
		semconv.DBSystemNamePostgreSQL, semconv.DBOperationBatchSize(len(live)))
	// One prepared statement, no transaction around it: one round trip
	// and one commit for the whole group.
	out, err := s.createMany(ctx, cached{s}, es, func(i int) string { return live[i].by })
	storage.EndSpan(span, err)
	switch {
	case err == nil:
		for i, r := range live {
			r.done <- createRes{c: out[i]}
		}
	case errors.Is(err, domain.ErrUnavailable) || ctx.Err() != nil:
		for _, r := range live {
			r.done <- createRes{err: err}
		}
	default:
		// One event the database refused must not fail the others:
		// store each alone.
		for _, r := range live {
			s.flushOne(r)
		}
	}
}

// flushOne stores one request's event with createSQL, within its own
// context.
func (s *Store) flushOne(r *createReq) {
	e, created, err := s.createOne(r.ctx, r.e, r.by)
	r.done <- createRes{c: ports.Created{Event: e, Created: created}, err: err}
}
