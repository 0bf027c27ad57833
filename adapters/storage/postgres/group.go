package postgres

import (
	"context"
	"errors"
	"fmt"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
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

// Create implements ports.Events: the event and its first history entry,
// or, for an id already stored, the stored event. Concurrent calls share
// statements and commits (group commit).
func (s *Store) Create(ctx context.Context, e domain.Event, by string) (domain.Event, bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	r, err := s.group.Do(ctx, storage.CreateReq{Event: e, By: by})
	if err != nil {
		// Closed, or given up: the event may still be stored, and a retry
		// with the same id finds it.
		return domain.Event{}, false, fmt.Errorf("postgres: create event: %w", wrap(err))
	}
	return r.Event, r.Created, r.Err
}

// flush stores a group and answers each of its requests.
func (s *Store) flush(calls []storage.Call[storage.CreateReq]) []storage.CreateRes {
	if len(calls) == 1 {
		return []storage.CreateRes{s.flushOne(calls[0])}
	}
	// Shared by requests with deadlines of their own: bounded by the
	// store's operation timeout, not by any one of them.
	ctx, cancel := s.op(context.Background())
	defer cancel()
	es, by := storage.GroupEvents(calls)
	ctx, span := storage.BatchSpan(ctx, s.tracer, "postgres.group_commit", storage.Contexts(calls),
		semconv.DBSystemNamePostgreSQL, semconv.DBOperationBatchSize(len(calls)))
	// One prepared statement, no transaction around it: one round trip
	// and one commit for the whole group.
	out, err := s.createMany(ctx, cached{s}, es, by)
	storage.EndSpan(span, err)
	shared := func(err error) bool { return errors.Is(err, domain.ErrUnavailable) || ctx.Err() != nil }
	return storage.SettleCreates(calls, out, err, shared, s.flushOne)
}

// flushOne stores one request's event with createSQL, within its own
// context.
func (s *Store) flushOne(c storage.Call[storage.CreateReq]) storage.CreateRes {
	e, created, err := s.createOne(c.Ctx, c.Req.Event, c.Req.By)
	return storage.CreateRes{Event: e, Created: created, Err: err}
}
