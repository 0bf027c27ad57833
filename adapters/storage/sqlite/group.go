package sqlite

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// maxGroup bounds how many concurrent Creates share one transaction.
const maxGroup = 256

// takeGroupTurn waits for a group's turn at the write connection, for as
// long as its transaction may take; endGroupTurn ends it.
func (s *Store) takeGroupTurn() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.groupTimeout())
	defer cancel()
	if err := s.turns.take(ctx, false); err != nil {
		return fmt.Errorf("wait for the write connection: %w", err)
	}
	return nil
}

func (s *Store) endGroupTurn() { s.turns.done(false) }

// groupTimeout bounds a transaction shared by requests with deadlines of
// their own: the statement timeout, or the busy timeout, not any one of
// theirs.
func (s *Store) groupTimeout() time.Duration { return cmp.Or(s.timeout, s.busy) + time.Second }

// flushGroup stores a group of Creates (storage.Group, one group at a
// time) in one transaction with one multi-row INSERT, so concurrent
// creates share statements and commits instead of queueing for the single
// write connection one by one; a lone request is stored at once, with no
// added wait. Before it gathers its requests a group takes a turn at the
// write connection as a small write (behind at most one batch, see
// writeTurns), so every create that arrives meanwhile joins it; it holds
// the turn while it is stored.
func (s *Store) flushGroup(calls []storage.Call[storage.CreateReq]) []storage.CreateRes {
	var ctx context.Context
	var cancel context.CancelFunc
	if len(calls) == 1 {
		ctx, cancel = s.opCtx(calls[0].Ctx)
	} else {
		ctx, cancel = context.WithTimeout(context.Background(), s.groupTimeout())
	}
	defer cancel()
	var span trace.Span
	if len(calls) > 1 {
		ctx, span = s.groupSpan(ctx, calls)
	}
	es, by := storage.GroupEvents(calls)
	var out []ports.Created
	err := s.writeTxTurn(ctx, func(tx *sqlx.Tx) error {
		if s.onTurn != nil {
			s.onTurn(true)
		}
		var err error
		out, err = s.insertEvents(ctx, tx, es, by)
		return err
	})
	if span != nil {
		storage.EndSpan(span, err)
	}
	shared := func(err error) bool { return len(calls) == 1 || unavailable(err) || ctx.Err() != nil }
	return storage.SettleCreates(calls, out, err, shared, s.createAlone)
}

// createAlone stores one request's event in a transaction of its own,
// within its own context; the caller holds a turn.
func (s *Store) createAlone(c storage.Call[storage.CreateReq]) storage.CreateRes {
	ctx, cancel := s.opCtx(c.Ctx)
	defer cancel()
	var out []ports.Created
	err := s.writeTxTurn(ctx, func(tx *sqlx.Tx) error {
		var err error
		out, err = s.insertEvents(ctx, tx, []domain.Event{c.Req.Event}, func(int) string { return c.Req.By })
		return err
	})
	if err != nil {
		return storage.CreateRes{Err: err}
	}
	return storage.CreateRes{Event: out[0].Event, Created: out[0].Created}
}

// groupSpan starts the span of a group commit's shared transaction (see
// flushGroup): storage.BatchSpan over the group's requests.
func (s *Store) groupSpan(ctx context.Context, calls []storage.Call[storage.CreateReq]) (context.Context, trace.Span) {
	return storage.BatchSpan(ctx, s.tracer, "sqlite.group_commit", storage.Contexts(calls),
		semconv.DBSystemNameSQLite, semconv.DBOperationBatchSize(len(calls)))
}
