package sqlite

import (
	"context"

	"golang.org/x/sync/semaphore"
)

// writeTurns shares the single write connection fairly between two kinds
// of writer: small writes (a group commit of Creates, a status change, a
// token) and bulk ones (a batch of up to 1000 events, a counting window).
// Left to database/sql, a freed connection goes to a random waiter, and
// under concurrent large batches a single create waited seconds (issue
// 13). Here writers of one kind queue first come, first served, and
// whenever both kinds wait their turns alternate: a small write waits
// behind at most the one bulk write holding the connection, however many
// batches are queued, and a batch behind at most one small write per
// batch queued before it.
//
// Each kind has a gate (a FIFO: x/sync's weighted semaphore serves its
// waiters in order) whose holder then queues for the connection itself,
// also a FIFO. So at most two writers, one of each kind, ever wait for the
// connection, and the one that has waited longer goes next.
type writeTurns struct {
	small, bulk *semaphore.Weighted // one writer of each kind at a time
	conn        *semaphore.Weighted // the write connection
}

func newWriteTurns() writeTurns {
	return writeTurns{small: semaphore.NewWeighted(1), bulk: semaphore.NewWeighted(1), conn: semaphore.NewWeighted(1)}
}

func (t writeTurns) gate(bulk bool) *semaphore.Weighted {
	if bulk {
		return t.bulk
	}
	return t.small
}

// take waits for a turn at the write connection, or for ctx to end.
func (t writeTurns) take(ctx context.Context, bulk bool) error {
	g := t.gate(bulk)
	if err := g.Acquire(ctx, 1); err != nil {
		return err
	}
	if err := t.conn.Acquire(ctx, 1); err != nil {
		g.Release(1)
		return err
	}
	return nil
}

// done ends a turn that take gave. The connection goes first, to the other
// kind's writer if one waits for it; then the next writer of this kind
// may queue behind that one.
func (t writeTurns) done(bulk bool) {
	t.conn.Release(1)
	t.gate(bulk).Release(1)
}
