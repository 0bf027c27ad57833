package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strconv"

	"github.com/jmoiron/sqlx"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
)

// changeRow is a changes row joined to its event.
type changeRow struct {
	Position  int64          `db:"position"`
	Kind      int            `db:"kind"`
	At        int64          `db:"at"`
	Status    string         `db:"c_status"`
	UpdatedAt int64          `db:"c_updated_at"`
	Detail    sql.NullString `db:"detail"`
	eventRow
}

// changesSelect reads changes from "changes c" with index hint (its
// INDEXED BY clause, or nothing) and where.
func changesSelect(hint, where string) string {
	// An erasure has no event: the columns of the LEFT JOIN are filled in.
	return `SELECT c.position, c.kind, c.at, c.status AS c_status, c.updated_at AS c_updated_at, c.detail,
	coalesce(e.id, c.event_id) AS id, coalesce(e.user_id, c.user_id) AS user_id, coalesce(e.action, '') AS action,
	coalesce(e.status, '') AS status, coalesce(e.occurred_at, c.at) AS occurred_at, coalesce(e.recorded_at, c.at) AS recorded_at,
	coalesce(e.updated_at, c.at) AS updated_at, coalesce(e.metadata, '{}') AS metadata
FROM changes c ` + hint + ` LEFT JOIN events e ON e.id = c.event_id ` + where +
		` AND c.pruned = 0 AND (e.id IS NOT NULL OR c.kind = ` + strconv.Itoa(storage.KindErased) + `) ORDER BY c.position LIMIT ?`
}

// Changes implements ports.Changes. A change's event is gone only after
// retention deleted it; such a change is left out.
func (s *Store) Changes(ctx context.Context, f domain.ChangeFilter) ([]domain.Change, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var rows []changeRow
	var err error
	if f.UserID != 0 {
		err = s.r.SelectContext(ctx, &rows, changesSelect(`INDEXED BY changes_user`,
			`WHERE c.user_id = ? AND c.position > ?`), f.UserID, f.After, f.Limit)
	} else {
		err = s.r.SelectContext(ctx, &rows, changesSelect(``, `WHERE c.position > ?`), f.After, f.Limit)
	}
	if err != nil {
		return nil, mapErr("read the change feed", err)
	}
	out := make([]domain.Change, len(rows))
	for i, r := range rows {
		kind, err := storage.ChangeKind(r.Kind)
		if err != nil {
			return nil, mapErr("read the change feed", err)
		}
		out[i] = domain.Change{Position: r.Position, Kind: kind, At: fromMicros(r.At)}
		if r.Kind == storage.KindErased {
			if out[i].Erasure, err = storage.ParseErasure(r.UserID, out[i].At, []byte(r.Detail.String)); err != nil {
				return nil, mapErr("read the change feed", err)
			}
			continue
		}
		e, err := r.event()
		if err != nil {
			return nil, mapErr("read the change feed", err)
		}
		e.Status, e.UpdatedAt = domain.Status(r.Status), fromMicros(r.UpdatedAt)
		out[i].Event = e
	}
	return out, nil
}

// FeedHead implements ports.Changes: AUTOINCREMENT's counter, which no
// deletion lowers.
func (s *Store) FeedHead(ctx context.Context) (int64, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var head int64
	err := s.r.GetContext(ctx, &head, `SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)`)
	if err != nil {
		return 0, mapErr("read the change feed's head", err)
	}
	return head, nil
}

// Erase implements ports.Erasures in one write transaction.
func (s *Store) Erase(ctx context.Context, e domain.Erasure) (domain.Erasure, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if !e.From.IsZero() {
		from = micros(e.From)
	}
	if !e.To.IsZero() {
		to = micros(e.To)
	}
	err := s.writeBulkTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE events SET metadata = '{}'
			WHERE user_id = ? AND recorded_at >= ? AND recorded_at < ? AND metadata <> '{}'`, e.UserID, from, to)
		if err != nil {
			return err
		}
		if e.Count, err = res.RowsAffected(); err != nil || e.Count == 0 {
			return err
		}
		// The link covers the erasure as ChainRecords reads it back.
		detail := storage.ErasureDetail(e)
		er, err := storage.ParseErasure(e.UserID, e.At, []byte(detail))
		if err != nil {
			return err
		}
		return s.insertChanges(ctx, tx, []newChange{{kind: storage.KindErased, userID: e.UserID, at: micros(e.At),
			updatedAt: micros(e.At), detail: sql.NullString{String: detail, Valid: true}, digest: domain.ErasureDigest(*er)}})
	})
	if err != nil {
		return domain.Erasure{}, mapErr(fmt.Sprintf("erase user %d", e.UserID), err)
	}
	return e, nil
}
