package sqlite

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
)

// TestTamper runs the tamper suite (issue 18), each case on a new file.
func TestTamper(t *testing.T) {
	storagetest.RunTamper(t, func(t *testing.T) (ports.Store, storagetest.Tamperer) {
		s := openTemp(t, storage.Options{})
		return s, tamperer{s.w}
	})
}

// tamperer changes a store's rows with SQL on its write connection, as
// someone with access to the database file could
// (storagetest.Tamperer).
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
	return tm.exec(ctx, stmt{1, `UPDATE events SET metadata = ? WHERE id = ?`, []any{md, id[:]}})
}

func (tm tamperer) SetAction(ctx context.Context, id domain.ID, action string) error {
	return tm.exec(ctx, stmt{1, `UPDATE events SET action = ? WHERE id = ?`, []any{action, id[:]}})
}

// ShiftTime moves a column of the events row: SQLite keys events by id
// alone, so recorded_at is kept there only.
func (tm tamperer) ShiftTime(ctx context.Context, id domain.ID, column string, d time.Duration) error {
	switch column {
	case "occurred_at", "recorded_at":
		return tm.exec(ctx, stmt{1, `UPDATE events SET ` + column + ` = ` + column + ` + ? WHERE id = ?`, []any{d.Microseconds(), id[:]}})
	}
	return fmt.Errorf("no time column %q", column)
}

func (tm tamperer) SetEventStatus(ctx context.Context, id domain.ID, status domain.Status) error {
	return tm.exec(ctx, stmt{1, `UPDATE events SET status = ? WHERE id = ?`, []any{string(status), id[:]}})
}

func (tm tamperer) SetChangeStatus(ctx context.Context, position int64, status domain.Status) error {
	return tm.exec(ctx, stmt{1, `UPDATE changes SET status = ? WHERE position = ? AND kind = ?`,
		[]any{string(status), position, storage.KindStatus}})
}

// DeleteEvent deletes the events row; its status_history rows go with it
// (ON DELETE CASCADE), as they would with any DELETE.
func (tm tamperer) DeleteEvent(ctx context.Context, id domain.ID) error {
	return tm.exec(ctx, stmt{1, `DELETE FROM events WHERE id = ?`, []any{id[:]}})
}

func (tm tamperer) DeleteChange(ctx context.Context, position int64) error {
	return tm.exec(ctx, stmt{1, `DELETE FROM changes WHERE position = ?`, []any{position}})
}

func (tm tamperer) DeleteNewest(ctx context.Context, n int) error {
	return tm.exec(ctx,
		stmt{-1, `DELETE FROM events WHERE id IN (SELECT event_id FROM changes WHERE kind <> ? ORDER BY position DESC LIMIT ?)`,
			[]any{storage.KindErased, n}},
		stmt{int64(n), `DELETE FROM changes WHERE position IN (SELECT position FROM changes ORDER BY position DESC LIMIT ?)`, []any{n}})
}

// SwapPositions goes through a free position: the key is checked row by
// row.
func (tm tamperer) SwapPositions(ctx context.Context, a, b int64) error {
	return tm.exec(ctx,
		stmt{1, `UPDATE changes SET position = -1 WHERE position = ?`, []any{a}},
		stmt{1, `UPDATE changes SET position = ? WHERE position = ?`, []any{a, b}},
		stmt{1, `UPDATE changes SET position = ? WHERE position = -1`, []any{b}})
}

func (tm tamperer) SetStoredLink(ctx context.Context, position int64, digest, link domain.Hash) error {
	return tm.exec(ctx, stmt{1, `UPDATE changes SET digest = ?, link = ? WHERE position = ?`,
		[]any{hashArg(digest), link[:], position}})
}

func (tm tamperer) SetChainHead(ctx context.Context, h domain.ChainHead) error {
	return tm.exec(ctx, stmt{1, `UPDATE chain_heads SET position = ?, count = ?, link = ? WHERE user_id = ?`,
		[]any{h.Position, h.Count, h.Link[:], h.UserID}})
}

func (tm tamperer) SetCheckpointLeaves(ctx context.Context, position int64, leaves []domain.ChainHead) error {
	return tm.exec(ctx, stmt{1, `UPDATE checkpoints SET leaves = ? WHERE position = ?`,
		[]any{storage.EncodeLeaves(leaves), position}})
}
