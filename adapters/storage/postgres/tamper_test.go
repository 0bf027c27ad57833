package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/storagetest"
	"github.com/activityd/activityd/test/testenv"
)

// TestTamper runs the tamper suite (issue 18), each case on a fresh
// schema; with CI set, a missing PostgreSQL fails it.
func TestTamper(t *testing.T) {
	testenv.NeedPostgres(t)
	storagetest.RunTamper(t, func(t *testing.T) (ports.Store, storagetest.Tamperer) {
		s := newStore(t)
		return s, tamperer{s.db}
	})
}

// tamperer changes a store's rows with SQL, as someone with access to the
// database could (storagetest.Tamperer).
type tamperer struct{ db *sqlx.DB }

// stmt is one statement of a tampering and how many rows it must change
// (-1: any number).
type stmt struct {
	rows  int64
	query string
	args  []any
}

// exec runs stmts in one transaction.
func (tm tamperer) exec(ctx context.Context, stmts ...stmt) error {
	tx, err := tm.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	for _, s := range stmts {
		res, err := tx.ExecContext(ctx, s.query, s.args...)
		if err != nil {
			return fmt.Errorf("%s: %w", s.query, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if s.rows >= 0 && n != s.rows {
			return fmt.Errorf("%s: changed %d rows, want %d", s.query, n, s.rows)
		}
	}
	return tx.Commit()
}

// hashArg is a digest as stored: NULL for none.
func hashArg(h domain.Hash) any {
	if h == (domain.Hash{}) {
		return nil
	}
	return h[:]
}

func (tm tamperer) SetMetadata(ctx context.Context, id domain.ID, md string) error {
	return tm.exec(ctx, stmt{1, `UPDATE events SET metadata = $2::json WHERE id = $1`, []any{id.String(), md}})
}

func (tm tamperer) SetAction(ctx context.Context, id domain.ID, action string) error {
	return tm.exec(ctx, stmt{1, `UPDATE events SET action = $2 WHERE id = $1`, []any{id.String(), action}})
}

// ShiftTime moves recorded_at in the events row (PostgreSQL moves it to
// its new partition) and in every row that names the event by it, so that
// the event is still found.
func (tm tamperer) ShiftTime(ctx context.Context, id domain.ID, column string, d time.Duration) error {
	args := []any{id.String(), fmt.Sprintf("%d microseconds", d.Microseconds())}
	switch column {
	case "occurred_at":
		return tm.exec(ctx, stmt{1, `UPDATE events SET occurred_at = occurred_at + $2::interval WHERE id = $1`, args})
	case "recorded_at":
		return tm.exec(ctx,
			stmt{1, `UPDATE events SET recorded_at = recorded_at + $2::interval WHERE id = $1`, args},
			stmt{-1, `UPDATE event_ids SET recorded_at = recorded_at + $2::interval WHERE id = $1`, args},
			stmt{-1, `UPDATE event_status_history SET event_recorded_at = event_recorded_at + $2::interval WHERE event_id = $1`, args},
			stmt{-1, `UPDATE changes SET event_recorded_at = event_recorded_at + $2::interval WHERE event_id = $1`, args})
	}
	return fmt.Errorf("no time column %q", column)
}

func (tm tamperer) SetEventStatus(ctx context.Context, id domain.ID, status domain.Status) error {
	return tm.exec(ctx, stmt{1, `UPDATE events SET status = $2 WHERE id = $1`, []any{id.String(), string(status)}})
}

func (tm tamperer) SetChangeStatus(ctx context.Context, position int64, status domain.Status) error {
	return tm.exec(ctx, stmt{1, `UPDATE changes SET status = $2 WHERE position = $1 AND kind = $3`,
		[]any{position, string(status), storage.KindStatus}})
}

func (tm tamperer) DeleteEvent(ctx context.Context, id domain.ID) error {
	return tm.exec(ctx, stmt{1, `DELETE FROM events WHERE id = $1`, []any{id.String()}})
}

func (tm tamperer) DeleteChange(ctx context.Context, position int64) error {
	return tm.exec(ctx, stmt{1, `DELETE FROM changes WHERE position = $1`, []any{position}})
}

func (tm tamperer) DeleteNewest(ctx context.Context, n int) error {
	return tm.exec(ctx,
		stmt{-1, `DELETE FROM events e USING (SELECT event_id, event_recorded_at FROM changes ORDER BY position DESC LIMIT $1) c
			WHERE e.id = c.event_id AND e.recorded_at = c.event_recorded_at`, []any{n}},
		stmt{int64(n), `DELETE FROM changes WHERE position IN (SELECT position FROM changes ORDER BY position DESC LIMIT $1)`, []any{n}})
}

// SwapPositions goes through a free position: the key is checked row by
// row.
func (tm tamperer) SwapPositions(ctx context.Context, a, b int64) error {
	return tm.exec(ctx,
		stmt{1, `UPDATE changes SET position = -1 WHERE position = $1`, []any{a}},
		stmt{1, `UPDATE changes SET position = $1 WHERE position = $2`, []any{a, b}},
		stmt{1, `UPDATE changes SET position = $1 WHERE position = -1`, []any{b}})
}

func (tm tamperer) SetStoredLink(ctx context.Context, position int64, digest, link domain.Hash) error {
	return tm.exec(ctx, stmt{1, `UPDATE changes SET digest = $2, link = $3 WHERE position = $1`,
		[]any{position, hashArg(digest), link[:]}})
}

func (tm tamperer) SetChainHead(ctx context.Context, h domain.ChainHead) error {
	return tm.exec(ctx, stmt{1, `UPDATE chain_heads SET position = $2, count = $3, link = $4 WHERE user_id = $1`,
		[]any{h.UserID, h.Position, h.Count, h.Link[:]}})
}

func (tm tamperer) SetCheckpointLeaves(ctx context.Context, position int64, leaves []domain.ChainHead) error {
	return tm.exec(ctx, stmt{1, `UPDATE checkpoints SET leaves = $2 WHERE position = $1`,
		[]any{position, storage.EncodeLeaves(leaves)}})
}
