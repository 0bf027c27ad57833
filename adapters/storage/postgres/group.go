package postgres

import (
	"context"
	"errors"
	"fmt"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// Creates are group-committed (storage.Group): concurrent ones queue, and
// a flusher stores whatever is queued as one createMany statement,
// answering each request after that commit; a lone request is stored at
// once with createSQL.

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

// createReq is what a Create asks of the group commit.
type createReq struct {
	e  domain.Event
	by string
}

// createRes is a Create's answer: its own error, one request of a group
// failing alone.
type createRes struct {
	c   ports.Created
	err error
}

// Create implements ports.Events: the event and its first history entry,
// or, for an id already stored, the stored event. Concurrent calls share
// statements and commits (group commit).
func (s *Store) Create(ctx context.Context, e domain.Event, by string) (domain.Event, bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	r, err := s.group.Do(ctx, createReq{e: e, by: by})
	if err != nil {
		// Closed, or given up: the event may still be stored, and a retry
		// with the same id finds it.
		return domain.Event{}, false, fmt.Errorf("postgres: create event: %w", wrap(err))
	}
	return r.c.Event, r.c.Created, r.err
}

// flush stores a group and answers each of its requests.
func (s *Store) flush(calls []storage.Call[createReq]) []createRes {
	if len(calls) == 1 {
		return []createRes{s.flushOne(calls[0])}
	}
	// Shared by requests with deadlines of their own: bounded by the
	// store's operation timeout, not by any one of them.
	ctx, cancel := s.op(context.Background())
	defer cancel()
	es := make([]domain.Event, len(calls))
	for i, c := range calls {
		es[i] = c.Req.e
	}
	ctx, span := storage.BatchSpan(ctx, s.tracer, "postgres.group_commit", storage.Contexts(calls),
		semconv.DBSystemNamePostgreSQL, semconv.DBOperationBatchSize(len(calls)))
	// One prepared statement, no transaction around it: one round trip
	// and one commit for the whole group.
	out, err := s.createMany(ctx, cached{s}, es, func(i int) string { return calls[i].Req.by })
	storage.EndSpan(span, err)
	res := make([]createRes, len(calls))
	switch {
	case err == nil:
		for i := range res {
			res[i].c = out[i]
		}
	case errors.Is(err, domain.ErrUnavailable) || ctx.Err() != nil:
		for i := range res {
			res[i].err = err
		}
	default:
		// One event the database refused must not fail the others:
		// store each alone.
		for i, c := range calls {
			res[i] = s.flushOne(c)
		}
	}
	return res
}

// flushOne stores one request's event with createSQL, within its own
// context.
func (s *Store) flushOne(c storage.Call[createReq]) createRes {
	e, created, err := s.createOne(c.Ctx, c.Req.e, c.Req.by)
	return createRes{c: ports.Created{Event: e, Created: created}, err: err}
}
